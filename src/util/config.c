/* config.c: table-driven INI parser with environment overrides. */
#include "config.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum opt_type { OPT_STR, OPT_U32, OPT_SIZE, OPT_MS, OPT_BOOL };

struct option {
    const char *section;
    const char *key;
    enum opt_type type;
    size_t offset;
    const char *def;
    uint64_t min, max;
};

#define O(sec, k, t, field, d, lo, hi)                                                                                 \
    {                                                                                                                  \
        sec, k, t, offsetof(hk_config, field), d, lo, hi                                                               \
    }
#define CONFIG_LINE_MAX 4096
#define ENV_PREFIX "HOOKD_"
#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define GIB (1024ull * MIB)
#define DAY (86400000ull)

/* The one list of keys: the example config in conf/ documents each of them. */
static const struct option options[] = {
    O("server", "listen", OPT_STR, listen, "127.0.0.1:8080", 0, 0),
    O("server", "max_connections", OPT_U32, max_connections, "10000", 1, 1000000),
    O("server", "max_header_bytes", OPT_SIZE, max_header_bytes, "16KiB", 1 * KIB, 1 * MIB),
    O("server", "max_headers", OPT_U32, max_headers, "100", 4, 10000),
    O("server", "max_body_bytes", OPT_SIZE, max_body_bytes, "1MiB", 1 * KIB, 1 * GIB),
    O("server", "header_timeout", OPT_MS, header_timeout_ms, "10s", 100, DAY),
    O("server", "body_timeout", OPT_MS, body_timeout_ms, "30s", 100, DAY),
    O("server", "keepalive_timeout", OPT_MS, keepalive_timeout_ms, "60s", 100, DAY),
    O("server", "shutdown_timeout", OPT_MS, shutdown_timeout_ms, "10s", 0, DAY),
    O("server", "access_log", OPT_BOOL, access_log, "off", 0, 1),
    O("server", "public_url", OPT_STR, public_url, "", 0, 0),
    O("store", "data_dir", OPT_STR, data_dir, "./data", 0, 0),
    O("store", "map_size", OPT_SIZE, map_size, "64MiB", 1 * MIB, 1024 * GIB),
    O("store", "max_batch", OPT_U32, max_batch, "2048", 1, 1000000),
    O("log", "level", OPT_STR, log_level, "info", 0, 0),
    O("delivery", "concurrency_per_origin", OPT_U32, concurrency_per_origin, "8", 1, 10000),
    O("delivery", "max_inflight", OPT_U32, max_inflight, "4096", 1, 1000000),
    O("delivery", "connect_timeout", OPT_MS, connect_timeout_ms, "5s", 10, DAY),
    O("delivery", "first_byte_timeout", OPT_MS, first_byte_timeout_ms, "10s", 10, DAY),
    O("delivery", "total_timeout", OPT_MS, total_timeout_ms, "15s", 10, DAY),
    O("delivery", "retry_schedule", OPT_STR, retry_schedule, "0s,5s,5m,30m,2h,5h,10h,10h", 0, 0),
    O("delivery", "retry_jitter", OPT_U32, retry_jitter_pct, "20", 0, 100),
    O("delivery", "disable_after", OPT_U32, disable_after, "10", 1, 1000000),
    O("delivery", "allow_targets", OPT_STR, allow_targets, "", 0, 0),
    O("delivery", "idempotency_window", OPT_MS, idempotency_window_ms, "24h", 0, 365 * DAY),
    O("delivery", "secret_overlap", OPT_MS, secret_overlap_ms, "24h", 0, 365 * DAY),
    O("delivery", "max_response_bytes", OPT_SIZE, max_response_bytes, "64KiB", 0, 64 * MIB),
    O("delivery", "retry_after_max", OPT_MS, retry_after_max_ms, "1h", 0, 7 * DAY),
    O("delivery", "ca_file", OPT_STR, ca_file, "/etc/ssl/certs/ca-certificates.crt", 0, 0),
    O("delivery", "log_retention", OPT_MS, log_retention_ms, "7d", 1000, 3650 * DAY),
    O("delivery", "prune_interval", OPT_MS, prune_interval_ms, "60s", 100, DAY),
    O("smtp", "host", OPT_STR, smtp_host, "", 0, 0),
    O("smtp", "port", OPT_U32, smtp_port, "25", 1, 65535),
    O("smtp", "from", OPT_STR, smtp_from, "hookd@localhost", 0, 0),
    O("smtp", "starttls", OPT_BOOL, smtp_starttls, "off", 0, 1),
    O("smtp", "min_interval", OPT_MS, smtp_min_interval_ms, "1h", 0, 365 * DAY),
    O("registry", "test_on_save", OPT_BOOL, test_on_save, "off", 0, 1),
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

static int apply(hk_config *cfg, const struct option *o, const char *value, char *err, size_t errlen)
{
    char *field = (char *)cfg + o->offset;
    uint64_t v = 0;
    int rc = 0;
    const char *what = "";
    switch (o->type) {
    case OPT_STR: {
        /* The one string with a closed set of values is checked here, so
         * that every way of setting it (file, environment, command line)
         * names the key on a mistake. */
        if (field == (char *)&cfg->log_level && hk_log_parse_level(value) < 0) {
            snprintf(err, errlen, "%s.%s: expected debug, info, warn or error, got \"%s\"", o->section, o->key, value);
            return HK_ECONFIG;
        }
        char **p = (char **)(void *)field;
        free(*p);
        *p = hk_strdup(value);
        return 0;
    }
    case OPT_BOOL:
        if (parse_bool(value, (bool *)(void *)field) != 0) {
            snprintf(err, errlen, "%s.%s: expected on/off, got \"%s\"", o->section, o->key, value);
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
        snprintf(err, errlen, "%s.%s: expected %s, got \"%s\"", o->section, o->key, what, value);
        return HK_ECONFIG;
    }
    if (v < o->min || v > o->max) {
        snprintf(err, errlen, "%s.%s: %s is out of range (%llu..%llu)", o->section, o->key, value,
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
        snprintf(err, errlen, "%s.%s: unknown key", section, key);
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

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int load_file(hk_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return HK_ECONFIG;
    }
    char line[CONFIG_LINE_MAX];
    char section[64] = "";
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        /* A line that does not fit would be read as two; refuse it instead. */
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n' && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line longer than %d bytes", path, lineno, CONFIG_LINE_MAX - 2);
            rc = HK_ECONFIG;
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (close == NULL || close[1] != '\0' || close - s - 1 >= (long)sizeof(section)) {
                snprintf(err, errlen, "%s:%d: malformed section header", path, lineno);
                rc = HK_ECONFIG;
                break;
            }
            *close = '\0';
            snprintf(section, sizeof(section), "%s", trim(s + 1));
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "%s:%d: expected key = value", path, lineno);
            rc = HK_ECONFIG;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        if (section[0] == '\0') {
            snprintf(err, errlen, "%s:%d: %s: key outside of a [section]", path, lineno, key);
            rc = HK_ECONFIG;
            break;
        }
        char sub[256];
        rc = hk_config_set(cfg, section, key, value, sub, sizeof(sub));
        if (rc != 0)
            snprintf(err, errlen, "%s:%d: %s", path, lineno, sub);
    }
    fclose(f);
    return rc;
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
            snprintf(err, errlen, "%.*s: unknown key (no such setting in the configuration)", (int)nlen, *e);
            return HK_ECONFIG;
        }
    }
    return 0;
}

int hk_config_load(hk_config *cfg, const char *path, char *err, size_t errlen)
{
    if (path != NULL) {
        int rc = load_file(cfg, path, err, errlen);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < HK_ARRAY_SIZE(options); i++) {
        char name[128];
        env_name(options[i].section, options[i].key, name, sizeof(name));
        const char *v = getenv(name);
        if (v == NULL)
            continue;
        char sub[256];
        int rc = apply(cfg, &options[i], v, sub, sizeof(sub));
        if (rc != 0) {
            snprintf(err, errlen, "%s: %s", name, sub);
            return rc;
        }
    }
    return check_env_names(err, errlen);
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
}
