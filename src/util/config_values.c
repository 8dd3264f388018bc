/*
 * config_values.c: checks of configuration values that need more than a
 * line or two (the [cluster] postgres connection string's shape), kept out
 * of config.c so that the option table and its parser stay readable.
 */
#include "config.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/*
 * [cluster] postgres: empty, a postgres:// or postgresql:// URI, or libpq's
 * key = value pairs (a value is a word or '...', with \\ escapes). Only the
 * shape is judged here (libpq judges the keys when it connects), and the
 * value is never echoed: it may hold a password.
 */
int hk_node_name_check(const char *v, char *why, size_t whylen)
{
    size_t n = strlen(v);
    if (n > HK_CLUSTER_NODE_NAME_MAX ||
        strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/") != n) {
        snprintf(why, whylen, "expected up to %d letters, digits, '.', '_', '-', ':' or '/'", HK_CLUSTER_NODE_NAME_MAX);
        return HK_ECONFIG;
    }
    return 0;
}

int hk_conninfo_check(const char *v, char *why, size_t whylen)
{
    const char *p = v;
    if (*v == '\0' || strncmp(v, "postgresql://", 13) == 0 || strncmp(v, "postgres://", 11) == 0)
        return 0;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        const char *key = p;
        while (isalpha((unsigned char)*p) || *p == '_')
            p++;
        size_t klen = (size_t)(p - key);
        while (isspace((unsigned char)*p))
            p++;
        if (klen == 0 || *p != '=') {
            snprintf(why, whylen, "expected key=value pairs (host=... dbname=...) or a postgresql:// URI");
            return HK_ECONFIG;
        }
        p++;
        while (isspace((unsigned char)*p))
            p++;
        bool quoted = *p == '\'';
        p += quoted;
        while (*p != '\0' && (quoted ? *p != '\'' : !isspace((unsigned char)*p)))
            p += *p == '\\' && p[1] != '\0' ? 2 : 1;
        if (quoted && *p != '\'') {
            snprintf(why, whylen, "a quoted value ('...') is not closed");
            return HK_ECONFIG;
        }
        p += quoted;
    }
    if (p == v || strspn(v, " \t") == strlen(v)) {
        snprintf(why, whylen, "names nothing; leave it empty for a single node");
        return HK_ECONFIG;
    }
    return 0;
}
