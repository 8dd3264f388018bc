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
    CHECK_STR(cfg.log_level, "info");
    CHECK_INT(cfg.concurrency_per_origin, 8);
    CHECK_STR(cfg.retry_schedule, "0s,5s,5m,30m,2h,5h,10h,10h");
    CHECK_INT(cfg.retry_jitter_pct, 20);
    CHECK_INT(cfg.disable_after, 10);
    CHECK_INT(cfg.idempotency_window_ms, 24ull * 3600 * 1000);
    CHECK_INT(cfg.max_response_bytes, 64 * 1024);
    CHECK_INT(cfg.log_retention_ms, 7ull * 86400 * 1000);
    CHECK_INT(cfg.smtp_port, 25);
    CHECK(!cfg.smtp_starttls);
    CHECK(!cfg.test_on_save);
    hk_config_free(&cfg);
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
                  "retry_schedule = 1s,2s\n",
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
    CHECK_STR(cfg.retry_schedule, "1s,2s");
    /* Keys the file does not name keep their defaults. */
    CHECK_INT(cfg.max_headers, 100);
    CHECK_INT(cfg.keepalive_timeout_ms, 60000);

    /* Errors name the file, the line and the key. */
    CHECK_INT(load(&cfg, "[server]\nlisten = x\nmax_conections = 5\n", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "hookd.conf:3") != NULL);
    CHECK(strstr(err, "server.max_conections") != NULL && strstr(err, "unknown") != NULL);
    CHECK_INT(load(&cfg, "[server]\nmax_body_bytes = lots\n", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "hookd.conf:2") != NULL && strstr(err, "server.max_body_bytes") != NULL);
    CHECK(strstr(err, "lots") != NULL);
    CHECK_INT(load(&cfg, "listen = 1.2.3.4:5\n", err, sizeof(err)), HK_ECONFIG);
    CHECK(strstr(err, "listen") != NULL && strstr(err, "section") != NULL);
    CHECK_INT(load(&cfg, "[server\nlisten = x\n", err, sizeof(err)), HK_ECONFIG);
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
    setenv("HOOKD_ADMIN_KEY", "not a config key", 1); /* outside every section: ignored */
    int rc = load(&cfg, "[server]\nmax_connections = 55\nmax_headers = 20\n", err, sizeof(err));
    CHECK_INT(rc, 0);
    if (rc != 0)
        fprintf(stderr, "load: %s\n", err);
    CHECK_INT(cfg.max_connections, 77);
    CHECK_INT(cfg.max_headers, 20);
    CHECK_STR(cfg.data_dir, "/srv/hookd");
    CHECK_INT(cfg.concurrency_per_origin, 3);
    /* Also with no file at all. */
    CHECK_INT(load(&cfg, NULL, err, sizeof(err)), 0);
    CHECK_INT(cfg.max_connections, 77);
    unsetenv("HOOKD_SERVER_MAX_CONNECTIONS");
    unsetenv("HOOKD_STORE_DATA_DIR");
    unsetenv("HOOKD_DELIVERY_CONCURRENCY_PER_ORIGIN");

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
    char path[256];
    snprintf(path, sizeof(path), "%s/hookd.conf", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return unit_done();
}
