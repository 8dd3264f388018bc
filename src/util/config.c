/*
 * config.c: the table-driven INI parser with environment overrides, and every
 * check of a value: its syntax when it is set (so the file line, the
 * environment variable or the command line option is named), then the rules
 * between keys once everything is read. Nothing outside this file judges a
 * configuration value: a config that loads is one the server can run with.
 */
#include "config.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

enum opt_type { OPT_STR, OPT_U32, OPT_SIZE, OPT_MS, OPT_BOOL };

/* Checks a string value before it is stored; 0, or -1 with the reason in why.
 * A check may also store what it parsed into cfg (the retry delays). */
typedef int (*str_check)(hk_config *cfg, const char *value, char *why, size_t whylen);

struct option {
    const char *section;
    const char *key;
    enum opt_type type;
    size_t offset;
    const char *def;
    uint64_t min, max;
    str_check check; /* OPT_STR only; NULL: any text without control characters */
};

#define O(sec, k, t, field, d, lo, hi)                                                                                 \
    {                                                                                                                  \
        sec, k, t, offsetof(hk_config, field), d, lo, hi, NULL                                                         \
    }
#define S(sec, k, field, d, chk)                                                                                       \
    {                                                                                                                  \
        sec, k, OPT_STR, offsetof(hk_config, field), d, 0, 0, chk                                                      \
    }
#define CONFIG_LINE_MAX 4096
#define CONFIG_FILE_MAX (1024 * 1024) /* bytes of a config file at most */
#define ORIGIN_MAX 320                /* "file:line" or an environment variable's name */
#define ENV_PREFIX "HOOKD_"
#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define GIB (1024ull * MIB)
#define DAY (86400000ull)

static int check_listen(hk_config *cfg, const char *v, char *why, size_t whylen);
static int check_url(hk_config *cfg, const char *v, char *why, size_t whylen);
static int check_nonempty(hk_config *cfg, const char *v, char *why, size_t whylen);
static int check_level(hk_config *cfg, const char *v, char *why, size_t whylen);
static int check_log_format(hk_config *cfg, const char *v, char *why, size_t whylen);
static int check_log_deliveries(hk_config *cfg, const char *v, char *why, size_t whylen);
static int check_retry(hk_config *cfg, const char *v, char *why, size_t whylen);
static int check_cidrs(hk_config *cfg, const char *v, char *why, size_t whylen);
static int check_host(hk_config *cfg, const char *v, char *why, size_t whylen);
static int check_mailbox(hk_config *cfg, const char *v, char *why, size_t whylen);
static int check_conninfo(hk_config *cfg, const char *v, char *why, size_t whylen);
static int check_node_name(hk_config *cfg, const char *v, char *why, size_t whylen);

/* v is a or b; else -1 with the reason. */
static int one_of(const char *v, const char *a, const char *b, char *why, size_t whylen)
{
    if (strcmp(v, a) == 0 || strcmp(v, b) == 0)
        return 0;
    return snprintf(why, whylen, "expected %s or %s, got \"%.200s\"", a, b, v), -1;
}
#define CHECK_ONE_OF(name, a, b)                                                                                       \
    static int name(hk_config *cfg, const char *v, char *why, size_t whylen)                                           \
    {                                                                                                                  \
        return one_of(v, a, b, why, whylen);                                                                           \
    }
CHECK_ONE_OF(check_sync, "log", "lmdb")
CHECK_ONE_OF(check_migrate, "auto", "off")

/* A number of event loops, or "auto": one per core, at most HK_WORKERS_MAX. */
static int check_workers(hk_config *cfg, const char *v, char *why, size_t whylen)
{
    char *end = NULL;
    unsigned long n = strcmp(v, "auto") == 0 ? uv_available_parallelism() : strtoul(v, &end, 10);
    if (end == NULL || (isdigit((unsigned char)*v) && *end == '\0' && n >= 1 && n <= HK_WORKERS_MAX))
        return cfg->workers = n < HK_WORKERS_MAX ? (uint32_t)n : HK_WORKERS_MAX, 0;
    return snprintf(why, whylen, "expected auto or a number from 1 to %d, got \"%.200s\"", HK_WORKERS_MAX, v), -1;
}

/* The one list of keys: the example config in conf/ documents each of them. */
static const struct option options[] = {
    S("server", "listen", listen, "127.0.0.1:8080", check_listen),
    O("server", "max_connections", OPT_U32, max_connections, "10000", 1, 1000000),
    O("server", "max_header_bytes", OPT_SIZE, max_header_bytes, "16KiB", 1 * KIB, 1 * MIB),
    O("server", "max_headers", OPT_U32, max_headers, "100", 4, 10000),
    O("server", "max_body_bytes", OPT_SIZE, max_body_bytes, "1MiB", 1 * KIB, 1 * GIB),
    O("server", "header_timeout", OPT_MS, header_timeout_ms, "10s", 100, DAY),
    O("server", "body_timeout", OPT_MS, body_timeout_ms, "30s", 100, DAY),
    O("server", "keepalive_timeout", OPT_MS, keepalive_timeout_ms, "60s", 100, DAY),
    O("server", "shutdown_timeout", OPT_MS, shutdown_timeout_ms, "10s", 0, DAY),
    O("server", "access_log", OPT_BOOL, access_log, "off", 0, 1),
    S("server", "public_url", public_url, "", check_url),
    S("server", "workers", workers_text, "1", check_workers),
    S("store", "data_dir", data_dir, "./data", check_nonempty),
    O("store", "map_size", OPT_SIZE, map_size, "64MiB", 1 * MIB, 1024 * GIB),
    O("store", "max_batch", OPT_U32, max_batch, "2048", 1, 1000000),
    S("store", "sync", store_sync, "log", check_sync),
    S("log", "level", log_level, "info", check_level),
    S("log", "format", log_format, "text", check_log_format),
    S("log", "deliveries", log_deliveries, "failures", check_log_deliveries),
    O("delivery", "concurrency_per_origin", OPT_U32, concurrency_per_origin, "8", 1, 10000),
    O("delivery", "max_inflight", OPT_U32, max_inflight, "4096", 1, 1000000),
    O("delivery", "connect_timeout", OPT_MS, connect_timeout_ms, "5s", 10, DAY),
    O("delivery", "first_byte_timeout", OPT_MS, first_byte_timeout_ms, "10s", 10, DAY),
    O("delivery", "total_timeout", OPT_MS, total_timeout_ms, "15s", 10, DAY),
    S("delivery", "retry_schedule", retry_schedule, "0s,5s,5m,30m,2h,5h,10h,10h", check_retry),
    O("delivery", "retry_jitter", OPT_U32, retry_jitter_pct, "20", 0, 100),
    O("delivery", "disable_after", OPT_U32, disable_after, "10", 1, 1000000),
    S("delivery", "allow_targets", allow_targets, "", check_cidrs),
    O("delivery", "idempotency_window", OPT_MS, idempotency_window_ms, "24h", 0, 365 * DAY),
    O("delivery", "secret_overlap", OPT_MS, secret_overlap_ms, "24h", 0, 365 * DAY),
    O("delivery", "max_response_bytes", OPT_SIZE, max_response_bytes, "64KiB", 0, 64 * MIB),
    O("delivery", "retry_after_max", OPT_MS, retry_after_max_ms, "1h", 0, 7 * DAY),
    S("delivery", "ca_file", ca_file, "/etc/ssl/certs/ca-certificates.crt", NULL),
    O("delivery", "log_retention", OPT_MS, log_retention_ms, "7d", 1000, 3650 * DAY),
    O("delivery", "prune_interval", OPT_MS, prune_interval_ms, "60s", 100, DAY),
    S("smtp", "host", smtp_host, "", check_host),
    O("smtp", "port", OPT_U32, smtp_port, "25", 1, 65535),
    S("smtp", "from", smtp_from, "hookd@localhost", check_mailbox),
    O("smtp", "starttls", OPT_BOOL, smtp_starttls, "off", 0, 1),
    O("smtp", "min_interval", OPT_MS, smtp_min_interval_ms, "1h", 0, 365 * DAY),
    O("registry", "test_on_save", OPT_BOOL, test_on_save, "off", 0, 1),
    O("metrics", "public", OPT_BOOL, metrics_public, "off", 0, 1),
    O("metrics", "webhook_series", OPT_U32, metrics_webhook_series, "100", 0, 10000),
    S("cluster", "postgres", cluster_postgres, "", check_conninfo),
    S("cluster", "migrate", cluster_migrate, "auto", check_migrate),
    S("cluster", "node", cluster_node, "", check_node_name),
    O("cluster", "lease", OPT_MS, cluster_lease_ms, "0", 0, DAY),
};

struct unit {
    const char *suffix; /* "" for a bare number */
    uint64_t mul;
};

/* Durations: suffixes are case-sensitive ("m" is minutes, not months). */
static const struct unit duration_units[] = {{"", 1},        {"ms", 1},      {"s", 1000}, {"m", 60000},
                                             {"min", 60000}, {"h", 3600000}, {"d", DAY},  {NULL, 0}};

/* Sizes: suffixes in any case, binary multiples either way. */
static const struct unit size_units[] = {{"", 1},      {"b", 1},    {"k", KIB}, {"kib", KIB}, {"kb", KIB}, {"m", MIB},
                                         {"mib", MIB}, {"mb", MIB}, {"g", GIB}, {"gib", GIB}, {"gb", GIB}, {NULL, 0}};

/* A whole number followed by one of units' suffixes; -1 when malformed or too large. */
static int parse_scaled(const char *s, const struct unit *units, bool nocase, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    for (const struct unit *u = units; u->suffix != NULL; u++) {
        if ((nocase ? strcasecmp(end, u->suffix) : strcmp(end, u->suffix)) != 0)
            continue;
        if (v > UINT64_MAX / u->mul)
            return -1;
        *out = v * u->mul;
        return 0;
    }
    return -1;
}

int hk_parse_duration_ms(const char *s, uint64_t *out)
{
    return parse_scaled(s, duration_units, false, out);
}

static int parse_size(const char *s, uint64_t *out)
{
    return parse_scaled(s, size_units, true, out);
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "on", "yes", "true"};
    static const char *const no[] = {"0", "off", "no", "false"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* ---- checks of string values ---------------------------------------------- */

static bool has_control(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

/* One comma-separated item of a list, trimmed of blanks (not NUL-terminated). */
struct item {
    const char *s;
    size_t len;
};

/* Takes the next item off *p (NULL when the list is used up); false at the end. */
static bool next_item(const char **p, struct item *it)
{
    if (*p == NULL)
        return false;
    const char *s = *p, *comma = strchr(s, ',');
    const char *e = comma != NULL ? comma : s + strlen(s);
    *p = comma != NULL ? comma + 1 : NULL;
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    it->s = s;
    it->len = (size_t)(e - s);
    return true;
}

/* Copies an item into buf as a string; false when it does not fit. */
static bool item_str(const struct item *it, char *buf, size_t buflen)
{
    if (it->len >= buflen)
        return false;
    memcpy(buf, it->s, it->len);
    buf[it->len] = '\0';
    return true;
}

/* A whole number of at most max written in digits only; -1 otherwise. */
static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

/* An IPv6 address, with an optional %zone as libuv accepts it. */
static bool is_ip6(const char *s)
{
    char buf[INET6_ADDRSTRLEN + 1];
    struct in6_addr a6;
    size_t n = strcspn(s, "%");
    if (n >= sizeof(buf) || (s[n] == '%' && s[n + 1] == '\0'))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return inet_pton(AF_INET6, buf, &a6) == 1;
}

static bool is_ip4(const char *s)
{
    struct in_addr a4;
    return inet_pton(AF_INET, s, &a4) == 1;
}

/* HOST:PORT as the HTTP server binds it: an IPv4 address or [IPv6], port 0..65535. */
static bool listen_addr_ok(const char *a)
{
    char host[256];
    const char *colon = strrchr(a, ':');
    uint64_t port;
    if (colon == NULL || (size_t)(colon - a) >= sizeof(host) || parse_uint(colon + 1, 65535, &port) != 0)
        return false;
    size_t hl = (size_t)(colon - a);
    memcpy(host, a, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        return is_ip6(host + 1);
    }
    return is_ip4(host);
}

static int check_listen(hk_config *cfg, const char *v, char *why, size_t whylen)
{
    char *copy = hk_strdup(v), *save = NULL;
    int n = 0, rc = 0;
    /* Split as the server does: at commas and blanks. */
    for (char *t = strtok_r(copy, ", \t", &save); t != NULL && rc == 0; t = strtok_r(NULL, ", \t", &save)) {
        if (++n > HK_LISTEN_MAX) {
            snprintf(why, whylen, "more than %d addresses", HK_LISTEN_MAX);
            rc = -1;
        } else if (!listen_addr_ok(t)) {
            snprintf(why, whylen, "\"%.200s\" is not HOST:PORT (an IPv4 address or [IPv6 address], a port 0..65535)",
                     t);
            rc = -1;
        }
    }
    free(copy);
    if (rc == 0 && n == 0) {
        snprintf(why, whylen, "names no address");
        rc = -1;
    }
    return rc;
}

static int check_url(hk_config *cfg, const char *v, char *why, size_t whylen)
{
    if (*v == '\0')
        return 0;
    size_t skip = strncasecmp(v, "http://", 7) == 0 ? 7 : strncasecmp(v, "https://", 8) == 0 ? 8 : 0;
    if (skip == 0 || v[skip] == '\0' || v[skip] == '/' || strpbrk(v, " \"<>\\") != NULL) {
        snprintf(why, whylen, "expected empty or an http:// or https:// URL with a host, got \"%.200s\"", v);
        return -1;
    }
    return 0;
}

static int check_nonempty(hk_config *cfg, const char *v, char *why, size_t whylen)
{
    if (*v == '\0') {
        snprintf(why, whylen, "may not be empty");
        return -1;
    }
    return 0;
}

static int check_level(hk_config *cfg, const char *v, char *why, size_t whylen)
{
    if (hk_log_parse_level(v) < 0) {
        snprintf(why, whylen, "expected debug, info, warn or error, got \"%.200s\"", v);
        return -1;
    }
    return 0;
}

static int check_log_format(hk_config *cfg, const char *v, char *why, size_t whylen)
{
    if (hk_log_parse_format(v) < 0) {
        snprintf(why, whylen, "expected text or json, got \"%.200s\"", v);
        return -1;
    }
    return 0;
}

int hk_log_deliveries_parse(const char *v)
{
    if (strcmp(v, "off") == 0)
        return HK_LOG_DELIVERIES_OFF;
    if (strcmp(v, "failures") == 0)
        return HK_LOG_DELIVERIES_FAILURES;
    if (strcmp(v, "all") == 0)
        return HK_LOG_DELIVERIES_ALL;
    return -1;
}

static int check_log_deliveries(hk_config *cfg, const char *v, char *why, size_t whylen)
{
    if (hk_log_deliveries_parse(v) < 0) {
        snprintf(why, whylen, "expected off, failures or all, got \"%.200s\"", v);
        return -1;
    }
    return 0;
}

static int check_node_name(hk_config *cfg, const char *v, char *why, size_t whylen)
{
    HK_UNUSED(cfg);
    return hk_node_name_check(v, why, whylen) == 0 ? 0 : -1;
}

static int check_conninfo(hk_config *cfg, const char *v, char *why, size_t whylen)
{
    return hk_conninfo_check(v, why, whylen) == 0 ? 0 : -1;
}

int hk_retry_delays_parse(const char *text, uint64_t **delays, size_t *n, char *why, size_t whylen)
{
    uint64_t *d = NULL;
    size_t cnt = 0;
    struct item it;
    char buf[64];
    /* Entries are separated by commas and spaces only, as the engine reads them. */
    if (has_control(text)) {
        snprintf(why, whylen, "control characters are not allowed");
        return HK_ECONFIG;
    }
    for (const char *p = text; next_item(&p, &it);) {
        uint64_t ms;
        if (cnt == HK_RETRY_MAX) {
            snprintf(why, whylen, "more than %d attempts", HK_RETRY_MAX);
            goto fail;
        }
        if (it.len == 0) {
            snprintf(why, whylen, "entry %zu is empty; expected comma-separated durations such as 0s,5s,5m", cnt + 1);
            goto fail;
        }
        if (!item_str(&it, buf, sizeof(buf)) || hk_parse_duration_ms(buf, &ms) != 0) {
            snprintf(why, whylen, "entry %zu, \"%.*s\", is not a duration such as 500ms, 10s, 5m, 2h or 7d", cnt + 1,
                     (int)(it.len > 40 ? 40 : it.len), it.s);
            goto fail;
        }
        if (ms > HK_RETRY_DELAY_MAX_MS) {
            snprintf(why, whylen, "entry %zu, \"%s\", is longer than 365d", cnt + 1, buf);
            goto fail;
        }
        d = hk_realloc(d, (cnt + 1) * sizeof(*d));
        d[cnt++] = ms;
    }
    if (cnt == 0) {
        snprintf(why, whylen, "expected comma-separated durations such as 0s,5s,5m");
        goto fail;
    }
    /* Checked after the syntax of every entry, which is the likelier mistake. */
    if (d[0] != 0) {
        snprintf(why, whylen,
                 "the first entry stands for the first attempt, which is made as soon as the event is "
                 "accepted: it must be 0s");
        goto fail;
    }
    *delays = d;
    *n = cnt;
    return 0;
fail:
    free(d);
    return HK_ECONFIG;
}

static int check_retry(hk_config *cfg, const char *v, char *why, size_t whylen)
{
    uint64_t *d;
    size_t n;
    if (hk_retry_delays_parse(v, &d, &n, why, whylen) != 0)
        return -1;
    free(cfg->retry_delays);
    cfg->retry_delays = d;
    cfg->nretry_delays = n;
    return 0;
}

/* An address or CIDR as the SSRF guard's allowlist takes it: IP, [IPv6], either with /PREFIX. */
static bool cidr_ok(const struct item *it)
{
    char buf[64];
    uint64_t prefix = 0;
    bool has_prefix = false;
    if (!item_str(it, buf, sizeof(buf)))
        return false;
    char *slash = strchr(buf, '/');
    if (slash != NULL) {
        *slash = '\0';
        if (parse_uint(slash + 1, 128, &prefix) != 0)
            return false;
        has_prefix = true;
    }
    char *host = buf;
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        host++;
    }
    struct in6_addr a6;
    if (is_ip4(host))
        return !has_prefix || prefix <= 32;
    return inet_pton(AF_INET6, host, &a6) == 1;
}

static int check_cidrs(hk_config *cfg, const char *v, char *why, size_t whylen)
{
    struct item it;
    for (const char *p = v; next_item(&p, &it);) {
        if (it.len == 0)
            continue;
        if (!cidr_ok(&it)) {
            snprintf(why, whylen, "\"%.*s\" is not an IP address or CIDR such as 10.0.0.0/8 or ::1/128",
                     (int)(it.len > 64 ? 64 : it.len), it.s);
            return -1;
        }
    }
    return 0;
}

static int check_host(hk_config *cfg, const char *v, char *why, size_t whylen)
{
    size_t n = strlen(v);
    if (n == 0)
        return 0;
    bool ok = n <= 253 && strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == n &&
              v[0] != '.' && v[0] != '-';
    if (!ok && n >= 2 && v[0] == '[' && v[n - 1] == ']') {
        char buf[INET6_ADDRSTRLEN + 2];
        ok = n - 2 < sizeof(buf);
        if (ok) {
            memcpy(buf, v + 1, n - 2);
            buf[n - 2] = '\0';
            ok = is_ip6(buf);
        }
    }
    if (!ok)
        ok = is_ip6(v);
    if (!ok) {
        snprintf(why, whylen, "\"%.200s\" is not a host name or IP address", v);
        return -1;
    }
    return 0;
}

static int check_mailbox(hk_config *cfg, const char *v, char *why, size_t whylen)
{
    const char *at = strchr(v, '@');
    bool ok = at != NULL && at != v && at[1] != '\0' && strchr(at + 1, '@') == NULL && strlen(v) <= 254 &&
              strpbrk(v, " ()<>,;:\"[]\\") == NULL;
    if (!ok) {
        snprintf(why, whylen, "expected an address such as hookd@example.com, got \"%.200s\"", v);
        return -1;
    }
    return 0;
}

/* ---- setting one value ------------------------------------------------------ */

static int apply(hk_config *cfg, const struct option *o, const char *value, char *err, size_t errlen)
{
    char *field = (char *)cfg + o->offset;
    uint64_t v = 0;
    int rc = 0;
    const char *what = "";
    switch (o->type) {
    case OPT_STR: {
        /* Every string is checked here, so that every way of setting it
         * (file, environment, command line) names the key on a mistake. */
        char why[384];
        if (has_control(value)) {
            snprintf(err, errlen, "%s.%s: control characters are not allowed", o->section, o->key);
            return HK_ECONFIG;
        }
        if (o->check != NULL && o->check(cfg, value, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s.%s: %.160s", o->section, o->key, why);
            return HK_ECONFIG;
        }
        char **p = (char **)(void *)field;
        free(*p);
        *p = hk_strdup(value);
        return 0;
    }
    case OPT_BOOL:
        if (parse_bool(value, (bool *)(void *)field) != 0) {
            snprintf(err, errlen, "%s.%s: expected on/off, got \"%.200s\"", o->section, o->key, value);
            return HK_ECONFIG;
        }
        return 0;
    case OPT_U32: {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(value, &end, 10);
        rc = (!isdigit((unsigned char)*value) || *end != '\0' || errno != 0) ? -1 : 0;
        v = x;
        what = "a whole number";
        break;
    }
    case OPT_SIZE:
        rc = parse_size(value, &v);
        what = "a size such as 64KiB or 1MiB";
        break;
    case OPT_MS:
        rc = hk_parse_duration_ms(value, &v);
        what = "a duration such as 500ms, 10s, 5m, 2h or 7d";
        break;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s.%s: expected %s, got \"%.120s\"", o->section, o->key, what, value);
        return HK_ECONFIG;
    }
    if (v < o->min || v > o->max) {
        snprintf(err, errlen, "%s.%s: %.200s is out of range (%llu..%llu)", o->section, o->key, value,
                 (unsigned long long)o->min, (unsigned long long)o->max);
        return HK_ECONFIG;
    }
    if (o->type == OPT_U32)
        *(uint32_t *)(void *)field = (uint32_t)v;
    else
        *(uint64_t *)(void *)field = v;
    return 0;
}

static const struct option *find(const char *section, const char *key)
{
    for (size_t i = 0; i < HK_ARRAY_SIZE(options); i++)
        if (strcmp(options[i].section, section) == 0 && strcmp(options[i].key, key) == 0)
            return &options[i];
    return NULL;
}

int hk_config_set(hk_config *cfg, const char *section, const char *key, const char *value, char *err, size_t errlen)
{
    const struct option *o = find(section, key);
    if (o == NULL) {
        snprintf(err, errlen, "%.64s.%.64s: unknown key", section, key);
        return HK_ECONFIG;
    }
    return apply(cfg, o, value, err, errlen);
}

void hk_config_defaults(hk_config *cfg)
{
    char err[256];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < HK_ARRAY_SIZE(options); i++)
        if (apply(cfg, &options[i], options[i].def, err, sizeof(err)) != 0)
            abort(); /* a bad built-in default is a programming error */
}

/* ---- loading: the file, the environment, then the rules between keys ---------- */

/* Where each option was set during one load: "file:line", an environment
 * variable's name, or "" when it kept its default. */
struct origins {
    char where[HK_ARRAY_SIZE(options)][ORIGIN_MAX];
};

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Parses INI text; name is what messages call it (the file's path). */
static int parse_text(hk_config *cfg, const char *name, const char *text, size_t len, struct origins *org, char *err,
                      size_t errlen)
{
    char line[CONFIG_LINE_MAX];
    char section[64] = "";
    const char *p = text, *end = text + len;
    for (int lineno = 1; p < end; lineno++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl != NULL ? nl : end) - p);
        /* A line that does not fit would be read as two; refuse it instead. */
        if (n > CONFIG_LINE_MAX - 2) {
            snprintf(err, errlen, "%s:%d: line longer than %d bytes", name, lineno, CONFIG_LINE_MAX - 2);
            return HK_ECONFIG;
        }
        if (memchr(p, '\0', n) != NULL) {
            snprintf(err, errlen, "%s:%d: NUL byte in the line", name, lineno);
            return HK_ECONFIG;
        }
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl != NULL ? nl + 1 : end;

        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (close == NULL || close[1] != '\0' || close - s - 1 >= (long)sizeof(section)) {
                snprintf(err, errlen, "%s:%d: malformed section header", name, lineno);
                return HK_ECONFIG;
            }
            *close = '\0';
            snprintf(section, sizeof(section), "%s", trim(s + 1));
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "%s:%d: expected key = value", name, lineno);
            return HK_ECONFIG;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        if (section[0] == '\0') {
            snprintf(err, errlen, "%s:%d: %.64s: key outside of a [section]", name, lineno, key);
            return HK_ECONFIG;
        }
        char sub[512];
        const struct option *o = find(section, key);
        if (o == NULL) {
            snprintf(err, errlen, "%s:%d: %.64s.%.64s: unknown key", name, lineno, section, key);
            return HK_ECONFIG;
        }
        int rc = apply(cfg, o, value, sub, sizeof(sub));
        if (rc != 0) {
            snprintf(err, errlen, "%s:%d: %s", name, lineno, sub);
            return rc;
        }
        snprintf(org->where[o - options], ORIGIN_MAX, "%.300s:%d", name, lineno);
    }
    return 0;
}

/* Reads a whole config file; HK_ECONFIG naming the path when it cannot. */
static int read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return HK_ECONFIG;
    }
    char *buf = hk_malloc(CONFIG_FILE_MAX + 1);
    size_t n = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
    int rc = 0;
    if (ferror(f)) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        rc = HK_ECONFIG;
    } else if (n > CONFIG_FILE_MAX) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, CONFIG_FILE_MAX);
        rc = HK_ECONFIG;
    }
    fclose(f);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *text = buf;
    *len = n;
    return 0;
}

extern char **environ;

/* Writes the environment variable name of an option ("HOOKD_SERVER_LISTEN") into buf. */
static void env_name(const char *section, const char *key, char *buf, size_t len)
{
    int n = snprintf(buf, len, ENV_PREFIX "%s%s%s", section, key ? "_" : "", key ? key : "");
    for (int j = 0; j < n && (size_t)j < len; j++)
        buf[j] = (char)toupper((unsigned char)buf[j]);
}

/* An HOOKD_<SECTION>_<KEY> variable whose section exists but whose key does
 * not is a typo that would otherwise be ignored silently. Variables outside
 * the config sections (HOOKD_ADMIN_KEY and the like) are not config keys. */
static int check_env_names(char *err, size_t errlen)
{
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL || strncmp(*e, ENV_PREFIX, strlen(ENV_PREFIX)) != 0)
            continue;
        size_t nlen = (size_t)(eq - *e);
        bool in_section = false, known = false;
        for (size_t i = 0; i < HK_ARRAY_SIZE(options) && !known; i++) {
            char name[128];
            env_name(options[i].section, NULL, name, sizeof(name));
            size_t sl = strlen(name);
            if (nlen > sl && strncmp(*e, name, sl) == 0 && (*e)[sl] == '_')
                in_section = true;
            env_name(options[i].section, options[i].key, name, sizeof(name));
            known = strlen(name) == nlen && strncmp(*e, name, nlen) == 0;
        }
        if (in_section && !known) {
            snprintf(err, errlen, "%.*s: unknown key (no such setting in the configuration)",
                     (int)(nlen > 128 ? 128 : nlen), *e);
            return HK_ECONFIG;
        }
    }
    return 0;
}

static int load_env(hk_config *cfg, struct origins *org, char *err, size_t errlen)
{
    for (size_t i = 0; i < HK_ARRAY_SIZE(options); i++) {
        char name[128];
        env_name(options[i].section, options[i].key, name, sizeof(name));
        const char *v = getenv(name);
        if (v == NULL)
            continue;
        char sub[512];
        int rc = apply(cfg, &options[i], v, sub, sizeof(sub));
        if (rc != 0) {
            snprintf(err, errlen, "%s: %s", name, sub);
            return rc;
        }
        snprintf(org->where[i], ORIGIN_MAX, "%s", name);
    }
    return check_env_names(err, errlen);
}

static size_t option_index(size_t offset)
{
    for (size_t i = 0; i < HK_ARRAY_SIZE(options); i++)
        if (options[i].offset == offset)
            return i;
    abort(); /* asked for a field the table does not hold: a programming error */
}

/* The rules between keys, checked once every value is in. A limit inside the
 * whole attempt may not exceed it when it was set; left at its default, it
 * yields to a smaller total_timeout (the attempt ends at total_timeout). */
static int check_relations(const hk_config *cfg, const struct origins *org, char *err, size_t errlen)
{
    static const size_t parts[] = {offsetof(hk_config, connect_timeout_ms), offsetof(hk_config, first_byte_timeout_ms)};
    size_t ti = option_index(offsetof(hk_config, total_timeout_ms));
    for (size_t k = 0; k < HK_ARRAY_SIZE(parts); k++) {
        size_t i = option_index(parts[k]);
        uint64_t v = *(const uint64_t *)(const void *)((const char *)cfg + parts[k]);
        if (org->where[i][0] == '\0' || v <= cfg->total_timeout_ms)
            continue;
        snprintf(err, errlen,
                 "%s: delivery.%s (%llums) is larger than delivery.total_timeout (%llums, %s%s): no attempt may take "
                 "longer than total_timeout",
                 org->where[i], options[i].key, (unsigned long long)v, (unsigned long long)cfg->total_timeout_ms,
                 org->where[ti][0] != '\0' ? "set at " : "its default", org->where[ti]);
        return HK_ECONFIG;
    }
    return 0;
}

int hk_config_parse(hk_config *cfg, const char *name, const char *text, size_t len, char *err, size_t errlen)
{
    struct origins *org = hk_calloc(1, sizeof(*org));
    int rc = parse_text(cfg, name, text, len, org, err, errlen);
    if (rc == 0)
        rc = check_relations(cfg, org, err, errlen);
    free(org);
    return rc;
}

int hk_config_load(hk_config *cfg, const char *path, char *err, size_t errlen)
{
    struct origins *org = hk_calloc(1, sizeof(*org));
    int rc = 0;
    if (path != NULL) {
        char *text;
        size_t len;
        rc = read_file(path, &text, &len, err, errlen);
        if (rc == 0) {
            rc = parse_text(cfg, path, text, len, org, err, errlen);
            free(text);
        }
    }
    if (rc == 0)
        rc = load_env(cfg, org, err, errlen);
    if (rc == 0)
        rc = check_relations(cfg, org, err, errlen);
    free(org);
    return rc;
}

void hk_config_free(hk_config *cfg)
{
    for (size_t i = 0; i < HK_ARRAY_SIZE(options); i++) {
        if (options[i].type != OPT_STR)
            continue;
        char **p = (char **)(void *)((char *)cfg + options[i].offset);
        free(*p);
        *p = NULL;
    }
    free(cfg->retry_delays);
    cfg->retry_delays = NULL;
    cfg->nretry_delays = 0;
}
