/* Unit tests of the configuration: defaults, the INI file, environment overrides and every error naming its key. */
#include <stdio.h>
#include <unistd.h>

#include "config.h"
#include "unit.h"

static char tmpdir[] = "/tmp/hk-config-XXXXXX";

/* Writes text to a file in the test's directory and returns its path (static buffer). */
static const char *write_conf(const char *text)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/hookd.conf", tmpdir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads text into a defaulted cfg; returns the result and leaves the message in err. */
static int load(hk_config *cfg, const char *text, char *err, size_t errlen)
{
    hk_config_free(cfg);
    hk_config_defaults(cfg);
    err[0] = '\0';
    return hk_config_load(cfg, text ? write_conf(text) : NULL, err, errlen);
}

static void test_defaults(void)
{
    hk_config cfg;
    hk_config_defaults(&cfg);
    CHECK_STR(cfg.listen, "127.0.0.1:8080");
    CHECK_INT(cfg.max_connections, 10000);
    CHECK_INT(cfg.max_header_bytes, 16 * 1024);
    CHECK_INT(cfg.max_headers, 100);
    CHECK_INT(cfg.max_body_bytes, 1024 * 1024);
    CHECK_INT(cfg.header_timeout_ms, 10000);
    CHECK_INT(cfg.body_timeout_ms, 30000);
    CHECK_INT(cfg.keepalive_timeout_ms, 60000);
    CHECK_INT(cfg.shutdown_timeout_ms, 10000);
    CHECK(!cfg.access_log);
    CHECK_STR(cfg.public_url, "");
    CHECK_STR(cfg.data_dir, "./data");
    CHECK_INT(cfg.map_size, 64ull * 1024 * 1024);
    CHECK_INT(cfg.max_batch, 2048);
    CHECK_STR(cfg.store_sync, "log");
    CHECK_STR(cfg.log_level, "info");
    CHECK_INT(cfg.concurrency_per_origin, 8);
    CHECK_STR(cfg.retry_schedule, "0s,5s,5m,30m,2h,5h,10h,10h");
    static const uint64_t sched[] = {0, 5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000};
    CHECK_INT(cfg.nretry_delays, 8);
    for (size_t i = 0; i < 8 && i < cfg.nretry_delays; i++)
        CHECK_INT(cfg.retry_delays[i], sched[i]);
    CHECK_INT(cfg.retry_jitter_pct, 20);
    CHECK_INT(cfg.disable_after, 10);
    CHECK_INT(cfg.idempotency_window_ms, 24ull * 3600 * 1000);
    CHECK_INT(cfg.max_response_bytes, 64 * 1024);
    CHECK_INT(cfg.log_retention_ms, 7ull * 86400 * 1000);
    CHECK_INT(cfg.smtp_port, 25);
    CHECK(!cfg.smtp_starttls);
    CHECK(!cfg.test_on_save);
    hk_config_free(&cfg);
    CHECK(cfg.retry_delays == NULL && cfg.nretry_delays == 0);
    /* Free is idempotent and safe on a zeroed struct. */
    hk_config_free(&cfg);
    hk_config zero;
    memset(&zero, 0, sizeof(zero));
    hk_config_free(&zero);
}

static void test_durations(void)
{
    uint64_t v = 0;
    CHECK_INT(hk_parse_duration_ms("500ms", &v), 0);
    CHECK_INT(v, 500);
    CHECK_INT(hk_parse_duration_ms("250", &v), 0);
    CHECK_INT(v, 250);
    CHECK_INT(hk_parse_duration_ms("10s", &v), 0);
    CHECK_INT(v, 10000);
    CHECK_INT(hk_parse_duration_ms("5m", &v), 0);
    CHECK_INT(v, 300000);
    CHECK_INT(hk_parse_duration_ms("5min", &v), 0);
    CHECK_INT(v, 300000);
    CHECK_INT(hk_parse_duration_ms("2h", &v), 0);
    CHECK_INT(v, 7200000);
    CHECK_INT(hk_parse_duration_ms("1d", &v), 0);
    CHECK_INT(v, 86400000);
    CHECK_INT(hk_parse_duration_ms("0s", &v), 0);
    CHECK_INT(v, 0);
    v = 42;
    const char *bad[] = {"",
                         "s",
                         "-1",
                         "-1s",
                         "1.5s",
                         "10 s",
                         " 10s",
                         "10x",
                         "10S",
                         "10sec",
                         "99999999999999999999",
                         "18446744073709551615s",
                         "1e3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = hk_parse_duration_ms(bad[i], &v);
        if (rc != -1)
            fprintf(stderr, "duration \"%s\" was accepted\n", bad[i]);
        CHECK_INT(rc, -1);
    }
    CHECK_INT(v, 42); /* untouched on failure */
}

static void test_sizes_bools_and_ranges(void)
{
    hk_config cfg;
    char err[256];
    hk_config_defaults(&cfg);
    CHECK_INT(hk_config_set(&cfg, "server", "max_body_bytes", "2MiB", err, sizeof(err)), 0);
    CHECK_INT(cfg.max_body_bytes, 2 * 1024 * 1024);
    CHECK_INT(hk_config_set(&cfg, "server", "max_body_bytes", "64k", err, sizeof(err)), 0);
    CHECK_INT(cfg.max_body_bytes, 64 * 1024);
    CHECK_INT(hk_config_set(&cfg, "server", "max_body_bytes", "3kb", err, sizeof(err)), 0);
    CHECK_INT(cfg.max_body_bytes, 3 * 1024);
    CHECK_INT(hk_config_set(&cfg, "server", "max_body_bytes", "1G", err, sizeof(err)), 0);
    CHECK_INT(cfg.max_body_bytes, 1024ull * 1024 * 1024);
    CHECK_INT(hk_config_set(&cfg, "server", "max_body_bytes", "4096", err, sizeof(err)), 0);
    CHECK_INT(cfg.max_body_bytes, 4096);
    CHECK_INT(hk_config_set(&cfg, "store", "map_size", "2GiB", err, sizeof(err)), 0);
    CHECK_INT(cfg.map_size, 2ull << 30);

    /* Malformed sizes name the key and keep the old value. */
    CHECK_INT(hk_config_set(&cfg, "server", "max_body_bytes", "1.5MiB", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "server.max_body_bytes") != NULL);
    CHECK(strstr(err, "1.5MiB") != NULL);
    CHECK_INT(cfg.max_body_bytes, 4096);
    CHECK_INT(hk_config_set(&cfg, "server", "max_body_bytes", "12 TB", err, sizeof(err)), HK_ECONFIG);
    CHECK_INT(hk_config_set(&cfg, "server", "max_body_bytes", "", err, sizeof(err)), HK_ECONFIG);

    /* Out of range, both ends, with the range in the message. */
    CHECK_INT(hk_config_set(&cfg, "server", "max_body_bytes", "512", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "server.max_body_bytes") != NULL && strstr(err, "out of range") != NULL);
    CHECK_INT(hk_config_set(&cfg, "server", "max_body_bytes", "2GiB", err, sizeof(err)), HK_ECONFIG);
    CHECK_INT(hk_config_set(&cfg, "server", "max_connections", "0", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "server.max_connections") != NULL && strstr(err, "1..1000000") != NULL);
    CHECK_INT(hk_config_set(&cfg, "server", "max_connections", "1000001", err, sizeof(err)), HK_ECONFIG);
    CHECK_INT(hk_config_set(&cfg, "server", "max_connections", "1000000", err, sizeof(err)), 0);
    CHECK_INT(cfg.max_connections, 1000000);
    CHECK_INT(hk_config_set(&cfg, "server", "max_connections", "4294967297", err, sizeof(err)), HK_ECONFIG);
    CHECK_INT(cfg.max_connections, 1000000);
    CHECK_INT(hk_config_set(&cfg, "server", "max_connections", "-5", err, sizeof(err)), HK_ECONFIG);
    CHECK_INT(hk_config_set(&cfg, "server", "max_connections", "12abc", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "whole number") != NULL);
    CHECK_INT(hk_config_set(&cfg, "smtp", "port", "65536", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "smtp.port") != NULL);
    CHECK_INT(hk_config_set(&cfg, "server", "header_timeout", "50ms", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "server.header_timeout") != NULL);
    CHECK_INT(hk_config_set(&cfg, "server", "header_timeout", "100ms", err, sizeof(err)), 0);
    CHECK_INT(cfg.header_timeout_ms, 100);
    CHECK_INT(hk_config_set(&cfg, "server", "keepalive_timeout", "forever", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "server.keepalive_timeout") != NULL && strstr(err, "duration") != NULL);
    CHECK_INT(hk_config_set(&cfg, "delivery", "retry_jitter", "101", err, sizeof(err)), HK_ECONFIG);

    /* Booleans. */
    CHECK_INT(hk_config_set(&cfg, "server", "access_log", "yes", err, sizeof(err)), 0);
    CHECK(cfg.access_log);
    CHECK_INT(hk_config_set(&cfg, "server", "access_log", "OFF", err, sizeof(err)), 0);
    CHECK(!cfg.access_log);
    CHECK_INT(hk_config_set(&cfg, "server", "access_log", "true", err, sizeof(err)), 0);
    CHECK(cfg.access_log);
    CHECK_INT(hk_config_set(&cfg, "server", "access_log", "maybe", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "server.access_log") != NULL);
    CHECK(cfg.access_log);

    /* Unknown keys and sections. */
    CHECK_INT(hk_config_set(&cfg, "server", "listn", "x", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "server.listn") != NULL && strstr(err, "unknown") != NULL);
    CHECK_INT(hk_config_set(&cfg, "sever", "listen", "x", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "sever.listen") != NULL);

    /* The log level is checked whichever way it is set. */
    CHECK_INT(hk_config_set(&cfg, "log", "level", "chatty", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "log.level") != NULL);
    CHECK_STR(cfg.log_level, "info");
    CHECK_INT(hk_config_set(&cfg, "log", "level", "debug", err, sizeof(err)), 0);
    CHECK_STR(cfg.log_level, "debug");

    /* How commits are made durable: the log or LMDB's own syncs, nothing else. */
    CHECK_INT(hk_config_set(&cfg, "store", "sync", "fsync", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "store.sync") != NULL && strstr(err, "log or lmdb") != NULL);
    CHECK_INT(hk_config_set(&cfg, "store", "sync", "lmdb", err, sizeof(err)), 0);
    CHECK_STR(cfg.store_sync, "lmdb");
    CHECK_INT(hk_config_set(&cfg, "store", "sync", "log", err, sizeof(err)), 0);
    CHECK_STR(cfg.store_sync, "log");

    /* Strings are copied. */
    char listen[] = "0.0.0.0:9000";
    CHECK_INT(hk_config_set(&cfg, "server", "listen", listen, err, sizeof(err)), 0);
    listen[0] = 'X';
    CHECK_STR(cfg.listen, "0.0.0.0:9000");
    hk_config_free(&cfg);
}

static void test_file(void)
{
    hk_config cfg;
    char err[512];
    hk_config_defaults(&cfg);
    int rc = load(&cfg,
                  "# a comment\n"
                  "; another\n"
                  "\n"
                  "[server]\n"
                  "  listen   =   127.0.0.1:9999  \n"
                  "max_connections=50\n"
                  "header_timeout = 2s\n"
                  "max_header_bytes = 8KiB\n"
                  "public_url =\n"
                  "\t[ store ]\n"
                  "data_dir = /var/lib/hookd\n"
                  "map_size = 1MiB\n"
                  "[log]\n"
                  "level = warn\n"
                  "[delivery]\n"
                  "retry_schedule = 0s,2s\n",
                  err, sizeof(err));
    CHECK_INT(rc, 0);
    if (rc != 0)
        fprintf(stderr, "load: %s\n", err);
    CHECK_STR(cfg.listen, "127.0.0.1:9999");
    CHECK_INT(cfg.max_connections, 50);
    CHECK_INT(cfg.header_timeout_ms, 2000);
    CHECK_INT(cfg.max_header_bytes, 8192);
    CHECK_STR(cfg.public_url, "");
    CHECK_STR(cfg.data_dir, "/var/lib/hookd");
    CHECK_INT(cfg.map_size, 1024 * 1024);
    CHECK_STR(cfg.log_level, "warn");
    CHECK_STR(cfg.retry_schedule, "0s,2s");
    CHECK_INT(cfg.nretry_delays, 2);
    CHECK(cfg.nretry_delays == 2 && cfg.retry_delays[0] == 0 && cfg.retry_delays[1] == 2000);
    /* Keys the file does not name keep their defaults. */
    CHECK_INT(cfg.max_headers, 100);
    CHECK_INT(cfg.keepalive_timeout_ms, 60000);

    /* Errors name the file, the line and the key. */
    CHECK_INT(load(&cfg, "[server]\nlisten = 127.0.0.1:1\nmax_conections = 5\n", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "hookd.conf:3") != NULL);
    CHECK(strstr(err, "server.max_conections") != NULL && strstr(err, "unknown") != NULL);
    CHECK_INT(load(&cfg, "[server]\nmax_body_bytes = lots\n", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "hookd.conf:2") != NULL && strstr(err, "server.max_body_bytes") != NULL);
    CHECK(strstr(err, "lots") != NULL);
    CHECK_INT(load(&cfg, "listen = 1.2.3.4:5\n", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "listen") != NULL && strstr(err, "section") != NULL);
    CHECK_INT(load(&cfg, "[server\nlisten = 127.0.0.1:1\n", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "hookd.conf:1") != NULL && strstr(err, "section") != NULL);
    CHECK_INT(load(&cfg, "[server]\njust some words\n", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "hookd.conf:2") != NULL);
    CHECK_INT(load(&cfg, "[log]\nlevel = loud\n", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "log.level") != NULL);

    /* A line too long to read whole is refused, not split into two. */
    char *longconf = malloc(10000);
    strcpy(longconf, "[server]\npublic_url = http://x/");
    size_t n = strlen(longconf);
    memset(longconf + n, 'a', 6000);
    strcpy(longconf + n + 6000, "\nmax_connections = 3\n");
    CHECK_INT(load(&cfg, longconf, err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "hookd.conf:2") != NULL && strstr(err, "long") != NULL);
    free(longconf);

    /* A missing file names the path. */
    hk_config_free(&cfg);
    hk_config_defaults(&cfg);
    CHECK_INT(hk_config_load(&cfg, "/nonexistent/hookd.conf", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "/nonexistent/hookd.conf") != NULL);
    hk_config_free(&cfg);
}

static void test_environment(void)
{
    hk_config cfg;
    char err[512];
    hk_config_defaults(&cfg);

    /* The environment wins over the file. */
    setenv("HOOKD_SERVER_MAX_CONNECTIONS", "77", 1);
    setenv("HOOKD_STORE_DATA_DIR", "/srv/hookd", 1);
    setenv("HOOKD_DELIVERY_CONCURRENCY_PER_ORIGIN", "3", 1);
    setenv("HOOKD_STORE_SYNC", "lmdb", 1);
    setenv("HOOKD_ADMIN_KEY", "not a config key", 1); /* outside every section: ignored */
    int rc = load(&cfg, "[server]\nmax_connections = 55\nmax_headers = 20\n", err, sizeof(err));
    CHECK_INT(rc, 0);
    if (rc != 0)
        fprintf(stderr, "load: %s\n", err);
    CHECK_INT(cfg.max_connections, 77);
    CHECK_INT(cfg.max_headers, 20);
    CHECK_STR(cfg.data_dir, "/srv/hookd");
    CHECK_INT(cfg.concurrency_per_origin, 3);
    CHECK_STR(cfg.store_sync, "lmdb");
    /* Also with no file at all. */
    CHECK_INT(load(&cfg, NULL, err, sizeof(err)), 0);
    CHECK_INT(cfg.max_connections, 77);
    unsetenv("HOOKD_SERVER_MAX_CONNECTIONS");
    unsetenv("HOOKD_STORE_DATA_DIR");
    unsetenv("HOOKD_DELIVERY_CONCURRENCY_PER_ORIGIN");
    unsetenv("HOOKD_STORE_SYNC");

    /* A bad value names the variable and the key. */
    setenv("HOOKD_SERVER_HEADER_TIMEOUT", "soon", 1);
    CHECK_INT(load(&cfg, NULL, err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "HOOKD_SERVER_HEADER_TIMEOUT") != NULL && strstr(err, "server.header_timeout") != NULL);
    unsetenv("HOOKD_SERVER_HEADER_TIMEOUT");
    setenv("HOOKD_LOG_LEVEL", "loud", 1);
    CHECK_INT(load(&cfg, NULL, err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "log.level") != NULL);
    unsetenv("HOOKD_LOG_LEVEL");

    /* A misspelt key in a known section is an error, not silently ignored. */
    setenv("HOOKD_SERVER_MAX_CONECTIONS", "5", 1);
    CHECK_INT(load(&cfg, NULL, err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "HOOKD_SERVER_MAX_CONECTIONS") != NULL);
    unsetenv("HOOKD_SERVER_MAX_CONECTIONS");
    /* Lower case is not how the variables are spelt either. */
    setenv("HOOKD_SERVER_listen", "0.0.0.0:1", 1);
    CHECK_INT(load(&cfg, NULL, err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "HOOKD_SERVER_listen") != NULL);
    unsetenv("HOOKD_SERVER_listen");
    unsetenv("HOOKD_ADMIN_KEY");

    CHECK_INT(load(&cfg, NULL, err, sizeof(err)), 0);
    CHECK_INT(cfg.max_connections, 10000);
    hk_config_free(&cfg);
}

/* Sets one key on a defaulted config; returns the result, the message in err. */
static int set1(const char *section, const char *key, const char *value, char *err, size_t errlen)
{
    hk_config cfg;
    hk_config_defaults(&cfg);
    err[0] = '\0';
    int rc = hk_config_set(&cfg, section, key, value, err, errlen);
    hk_config_free(&cfg);
    return rc;
}

static void test_retry_schedule(void)
{
    hk_config cfg;
    char err[512];
    hk_config_defaults(&cfg);

    /* Blanks around entries are fine; every entry becomes one attempt. */
    CHECK_INT(hk_config_set(&cfg, "delivery", "retry_schedule", "0s, 100ms ,1s", err, sizeof(err)), 0);
    CHECK_INT(cfg.nretry_delays, 3);
    CHECK(cfg.nretry_delays == 3 && cfg.retry_delays[0] == 0 && cfg.retry_delays[1] == 100 &&
          cfg.retry_delays[2] == 1000);
    CHECK_INT(hk_config_set(&cfg, "delivery", "retry_schedule", "0s", err, sizeof(err)), 0);
    CHECK_INT(cfg.nretry_delays, 1);

    /* A bad entry names the key and the entry, and changes nothing. */
    CHECK_INT(hk_config_set(&cfg, "delivery", "retry_schedule", "0s,5x", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "delivery.retry_schedule") != NULL && strstr(err, "entry 2") != NULL &&
          strstr(err, "\"5x\"") != NULL);
    CHECK_STR(cfg.retry_schedule, "0s");
    CHECK_INT(cfg.nretry_delays, 1);
    CHECK_INT(hk_config_set(&cfg, "delivery", "retry_schedule", "0s,,5s", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "entry 2 is empty") != NULL);
    CHECK_INT(hk_config_set(&cfg, "delivery", "retry_schedule", "0s,5s,", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "entry 3 is empty") != NULL);
    CHECK_INT(hk_config_set(&cfg, "delivery", "retry_schedule", "", err, sizeof(err)), HK_ECONFIG);
    CHECK_INT(hk_config_set(&cfg, "delivery", "retry_schedule", "0s 5s", err, sizeof(err)), HK_ECONFIG);
    CHECK_INT(hk_config_set(&cfg, "delivery", "retry_schedule", "0s,400d", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "365d") != NULL);
    /* The first entry is the first attempt, made at once: it must say so. */
    CHECK_INT(hk_config_set(&cfg, "delivery", "retry_schedule", "1s,5s", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "first attempt") != NULL && strstr(err, "0s") != NULL);
    CHECK_INT(hk_config_set(&cfg, "delivery", "retry_schedule", "0ms,5s", err, sizeof(err)), 0);
    /* At most HK_RETRY_MAX attempts. */
    char many[HK_RETRY_MAX * 4 + 8] = "0s";
    for (int i = 1; i < HK_RETRY_MAX; i++)
        strcat(many, ",1s");
    CHECK_INT(hk_config_set(&cfg, "delivery", "retry_schedule", many, err, sizeof(err)), 0);
    CHECK_INT(cfg.nretry_delays, HK_RETRY_MAX);
    strcat(many, ",1s");
    CHECK_INT(hk_config_set(&cfg, "delivery", "retry_schedule", many, err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "more than") != NULL);
    CHECK_INT(cfg.nretry_delays, HK_RETRY_MAX);

    /* The parser alone, as the engine may use it. */
    uint64_t *d = NULL;
    size_t n = 0;
    CHECK_INT(hk_retry_delays_parse("0s,5m", &d, &n, err, sizeof(err)), 0);
    CHECK(n == 2 && d != NULL && d[1] == 300000);
    free(d);
    d = NULL;
    CHECK_INT(hk_retry_delays_parse("0s,soon", &d, &n, err, sizeof(err)), HK_ECONFIG);
    CHECK(d == NULL && n == 2);

    /* In a file: file and line, before anything else happens. */
    CHECK_INT(load(&cfg, "[delivery]\n# comment\nretry_schedule = 1s,5x\n", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "hookd.conf:3: delivery.retry_schedule") != NULL && strstr(err, "5x") != NULL);
    hk_config_free(&cfg);
}

static void test_string_values(void)
{
    char err[512];
    /* listen: IPv4 or [IPv6] with a port, comma- or blank-separated, at most HK_LISTEN_MAX. */
    const char *good_listen[] = {"127.0.0.1:8080",          "0.0.0.0:0",       "[::1]:9000",   "127.0.0.1:1,[::]:2",
                                 "127.0.0.1:1 127.0.0.2:2", "[fe80::1%lo]:80", "1.2.3.4:65535"};
    for (size_t i = 0; i < HK_ARRAY_SIZE(good_listen); i++) {
        int rc = set1("server", "listen", good_listen[i], err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "listen \"%s\" refused: %s\n", good_listen[i], err);
        CHECK_INT(rc, 0);
    }
    const char *bad_listen[] = {
        "x",      "",           "localhost:8080", "1.2.3.4:65536", "1.2.3.4:", "1.2.3.4",     ":80",         "[::1:80",
        "::1:80", "1.2.3.4:-1", "1.2.3.4:8a",     "[x]:80",        " , ",      "1.2.3.4:+80", "1.2.3.4:http"};
    for (size_t i = 0; i < HK_ARRAY_SIZE(bad_listen); i++) {
        int rc = set1("server", "listen", bad_listen[i], err, sizeof(err));
        if (rc != HK_ECONFIG)
            fprintf(stderr, "listen \"%s\" accepted\n", bad_listen[i]);
        CHECK_INT(rc, HK_ECONFIG);
        CHECK(strstr(err, "server.listen") != NULL);
    }
    CHECK_INT(set1("server", "listen",
                   "1.1.1.1:1,1.1.1.1:2,1.1.1.1:3,1.1.1.1:4,1.1.1.1:5,1.1.1.1:6,1.1.1.1:7,1.1.1.1:8", err, sizeof(err)),
              0);
    CHECK_INT(set1("server", "listen",
                   "1.1.1.1:1,1.1.1.1:2,1.1.1.1:3,1.1.1.1:4,1.1.1.1:5,1.1.1.1:6,1.1.1.1:7,1.1.1.1:8,1.1.1.1:9", err,
                   sizeof(err)),
              HK_ECONFIG);
    CHECK(strstr(err, "more than 8") != NULL);

    /* allow_targets: what the SSRF guard's allowlist takes. */
    const char *good_cidr[] = {"",          "10.0.0.0/8", "10.0.0.0/8, ::1/128, 127.0.0.1", "[::1]/128", "10.0.0.0/8,,",
                               "0.0.0.0/0", "fc00::/7"};
    for (size_t i = 0; i < HK_ARRAY_SIZE(good_cidr); i++) {
        int rc = set1("delivery", "allow_targets", good_cidr[i], err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "allow_targets \"%s\" refused: %s\n", good_cidr[i], err);
        CHECK_INT(rc, 0);
    }
    const char *bad_cidr[] = {"nope",    "10.0.0.0/33", "::1/129", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/8,example.com",
                              "10.0.0/8"};
    for (size_t i = 0; i < HK_ARRAY_SIZE(bad_cidr); i++) {
        int rc = set1("delivery", "allow_targets", bad_cidr[i], err, sizeof(err));
        if (rc != HK_ECONFIG)
            fprintf(stderr, "allow_targets \"%s\" accepted\n", bad_cidr[i]);
        CHECK_INT(rc, HK_ECONFIG);
        CHECK(strstr(err, "delivery.allow_targets") != NULL);
    }

    /* public_url: empty or an http(s) URL with a host. */
    CHECK_INT(set1("server", "public_url", "", err, sizeof(err)), 0);
    CHECK_INT(set1("server", "public_url", "https://hooks.example.com/base", err, sizeof(err)), 0);
    CHECK_INT(set1("server", "public_url", "HTTP://10.0.0.1:8080", err, sizeof(err)), 0);
    CHECK_INT(set1("server", "public_url", "ftp://x", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "server.public_url") != NULL);
    CHECK_INT(set1("server", "public_url", "http://", err, sizeof(err)), HK_ECONFIG);
    CHECK_INT(set1("server", "public_url", "hooks.example.com", err, sizeof(err)), HK_ECONFIG);
    CHECK_INT(set1("server", "public_url", "http://a b/", err, sizeof(err)), HK_ECONFIG);

    /* data_dir, smtp host and sender. */
    CHECK_INT(set1("store", "data_dir", "", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "store.data_dir") != NULL);
    CHECK_INT(set1("smtp", "host", "mail.example.com", err, sizeof(err)), 0);
    CHECK_INT(set1("smtp", "host", "[::1]", err, sizeof(err)), 0);
    CHECK_INT(set1("smtp", "host", "127.0.0.1", err, sizeof(err)), 0);
    CHECK_INT(set1("smtp", "host", "mail example", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "smtp.host") != NULL);
    CHECK_INT(set1("smtp", "from", "hookd@test.example", err, sizeof(err)), 0);
    CHECK_INT(set1("smtp", "from", "nobody", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "smtp.from") != NULL);
    CHECK_INT(set1("smtp", "from", "a@b@c", err, sizeof(err)), HK_ECONFIG);
    CHECK_INT(set1("smtp", "from", "Hook <hookd@x>", err, sizeof(err)), HK_ECONFIG);
    CHECK_INT(set1("smtp", "from", "", err, sizeof(err)), HK_ECONFIG);

    /* No string takes control characters (they would end up in logs and mail headers). */
    CHECK_INT(set1("smtp", "from", "hookd@x\r\nBcc: y@z", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "smtp.from") != NULL && strstr(err, "control") != NULL);
    CHECK_INT(set1("delivery", "ca_file", "/etc/ssl/x\x01.pem", err, sizeof(err)), HK_ECONFIG);
    CHECK_INT(set1("delivery", "ca_file", "/etc/ssl/certs/other.pem", err, sizeof(err)), 0);
}

static void test_relations(void)
{
    hk_config cfg;
    char err[512];
    hk_config_defaults(&cfg);

    /* Set larger than the whole attempt: refused, naming both keys and where they were set. */
    CHECK_INT(load(&cfg, "[delivery]\nconnect_timeout = 20s\n", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "hookd.conf:2: delivery.connect_timeout") != NULL);
    CHECK(strstr(err, "delivery.total_timeout (15000ms, its default)") != NULL);
    CHECK_INT(load(&cfg, "[delivery]\nconnect_timeout = 3s\ntotal_timeout = 2s\n", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "hookd.conf:2: delivery.connect_timeout") != NULL && strstr(err, "hookd.conf:3") != NULL);
    CHECK_INT(load(&cfg, "[delivery]\nfirst_byte_timeout = 16s\n", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "hookd.conf:2: delivery.first_byte_timeout") != NULL);
    /* Equal is fine; so is a total below the defaults of the parts, which yield to it. */
    CHECK_INT(load(&cfg, "[delivery]\nconnect_timeout = 15s\nfirst_byte_timeout = 15s\n", err, sizeof(err)), 0);
    CHECK_INT(load(&cfg, "[delivery]\ntotal_timeout = 2s\n", err, sizeof(err)), 0);
    CHECK_INT(load(&cfg, "[delivery]\nconnect_timeout = 1s\nfirst_byte_timeout = 500ms\ntotal_timeout = 2s\n", err,
                   sizeof(err)),
              0);
    /* From the environment: the variable is named. */
    setenv("HOOKD_DELIVERY_CONNECT_TIMEOUT", "30s", 1);
    CHECK_INT(load(&cfg, NULL, err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "HOOKD_DELIVERY_CONNECT_TIMEOUT: delivery.connect_timeout") != NULL);
    CHECK_INT(load(&cfg, "[delivery]\ntotal_timeout = 1m\n", err, sizeof(err)), 0);
    unsetenv("HOOKD_DELIVERY_CONNECT_TIMEOUT");

    /* The same from text in memory, which need not end in a NUL or a newline. */
    hk_config_free(&cfg);
    hk_config_defaults(&cfg);
    const char text[] = "[delivery]\ntotal_timeout = 1s\nconnect_timeout = 2sXXXX";
    CHECK_INT(hk_config_parse(&cfg, "mem", text, sizeof(text) - 1 - 4, err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "mem:3: delivery.connect_timeout") != NULL && strstr(err, "set at mem:2") != NULL);
    hk_config_free(&cfg);
    hk_config_defaults(&cfg);
    const char nul[] = "[server]\nlisten = 127.0.0.1:1\0\n";
    CHECK_INT(hk_config_parse(&cfg, "mem", nul, sizeof(nul) - 1, err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "mem:2") != NULL && strstr(err, "NUL") != NULL);
    hk_config_free(&cfg);
}

int main(void)
{
    /* Start from an environment without hookd settings. */
    extern char **environ;
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e != NULL; e++) {
            if (strncmp(*e, "HOOKD_", 6) == 0) {
                char name[256];
                snprintf(name, sizeof(name), "%.*s", (int)(strchr(*e, '=') - *e), *e);
                unsetenv(name);
                again = 1;
                break;
            }
        }
    }
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults();
    test_durations();
    test_sizes_bools_and_ranges();
    test_file();
    test_environment();
    test_retry_schedule();
    test_string_values();
    test_relations();
    char path[256];
    snprintf(path, sizeof(path), "%s/hookd.conf", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return unit_done();
}
