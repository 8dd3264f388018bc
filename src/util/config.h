/*
 * config.h: the INI configuration. Every key has a default, may be set in the
 * file, and may be overridden by the environment variable
 * HOOKD_<SECTION>_<KEY> (upper case). Unknown keys and bad values are errors
 * that name the key (and the file and line, or the variable). Every value is
 * checked when it is loaded, including the rules between keys, so a config
 * that loads is one the server can run with: nothing is created before.
 */
#ifndef HK_CONFIG_H
#define HK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/** Addresses [server] listen may name at most. */
#define HK_LISTEN_MAX 8
/** [server] workers at most (event loops, one thread each). */
#define HK_WORKERS_MAX 64
/** Entries of [delivery] retry_schedule at most (attempts of one delivery). */
#define HK_RETRY_MAX 100
/** One retry_schedule entry at most, in ms (365 days). */
#define HK_RETRY_DELAY_MAX_MS (365ull * 86400000ull)

/** The whole configuration. Strings are owned by the struct (freed by hk_config_free). */
typedef struct hk_config {
    /* [server] */
    char *listen;                  /**< comma-separated HOST:PORT list; [v6]:port for IPv6 */
    uint32_t max_connections;      /**< open client connections at most; more are closed at accept */
    uint64_t max_header_bytes;     /**< request line plus headers, bytes (431 past it) */
    uint32_t max_headers;          /**< header fields per request (431 past it) */
    uint64_t max_body_bytes;       /**< request body, bytes (413 past it) */
    uint64_t header_timeout_ms;    /**< time to receive a request's head (408 past it) */
    uint64_t body_timeout_ms;      /**< time to receive a request's body once its head is in */
    uint64_t keepalive_timeout_ms; /**< idle time on a kept-alive connection before it is closed */
    uint64_t shutdown_timeout_ms;  /**< how long a drain may take on SIGTERM before exit */
    bool access_log;               /**< one log line per request */
    char *public_url;              /**< base URL for links in responses; empty = from Host header */
    char *workers_text;            /**< [server] workers as written: a number 1..HK_WORKERS_MAX or "auto" */
    /**
     * Event loops serving requests and deliveries, one thread each, each
     * accepting on its own SO_REUSEPORT listener: workers_text parsed
     * ("auto": the number of cores, at most HK_WORKERS_MAX).
     */
    uint32_t workers;
    /* [store] */
    char *data_dir;     /**< directory of the LMDB environment */
    uint64_t map_size;  /**< initial LMDB map size in bytes; grows when full */
    uint32_t max_batch; /**< write requests per group commit at most */
    /**
     * How a group commit is made durable: "log" appends it to the
     * write-ahead log in data_dir/wal with one fdatasync and checkpoints
     * LMDB in the background; "lmdb" commits LMDB with its own two syncs.
     */
    char *store_sync;
    /* [log] */
    char *log_level;      /**< debug, info, warn or error */
    char *log_format;     /**< text or json (hk_log_parse_format) */
    char *log_deliveries; /**< off, failures or all: which delivery attempts get a line (hk_log_deliveries_parse) */
    /* [delivery] */
    uint32_t concurrency_per_origin; /**< parallel requests to one scheme://host:port */
    uint32_t max_inflight;           /**< deliveries held in memory at once (the due window) */
    uint64_t connect_timeout_ms;     /**< TCP connect plus TLS handshake; when set, at most total_timeout */
    uint64_t first_byte_timeout_ms;  /**< request sent to first response byte; when set, at most total_timeout */
    uint64_t total_timeout_ms;       /**< whole attempt */
    /**
     * The retry schedule as written: comma-separated durations, one per
     * attempt. Entry 1 stands for the first attempt, made as soon as the
     * event is accepted, and must be 0s; entry N (N >= 2) is the wait before
     * attempt N after attempt N-1 failed. After the last entry's attempt
     * fails, the delivery is exhausted. Parsed into retry_delays.
     */
    char *retry_schedule;
    /**
     * retry_schedule parsed, owned by the config: retry_delays[i] is the
     * wait in ms before attempt i+1 (so retry_delays[0] is 0, the first
     * attempt), before jitter and Retry-After. nretry_delays (1..HK_RETRY_MAX)
     * is how many attempts a delivery gets.
     */
    uint64_t *retry_delays;
    size_t nretry_delays;           /**< entries of retry_delays: attempts per delivery */
    uint32_t retry_jitter_pct;      /**< +/- percent applied to each retry delay */
    uint32_t disable_after;         /**< consecutive failures that disable a webhook */
    char *allow_targets;            /**< CIDR list the SSRF guard lets through */
    uint64_t idempotency_window_ms; /**< how long an Idempotency-Key is remembered */
    uint64_t secret_overlap_ms;     /**< how long a replaced secret still signs */
    uint64_t max_response_bytes;    /**< response body kept per attempt */
    uint64_t retry_after_max_ms;    /**< upper bound honoured for Retry-After */
    char *ca_file;                  /**< CA bundle for outbound TLS */
    uint64_t log_retention_ms;      /**< attempt-log records older than this are pruned */
    uint64_t prune_interval_ms;     /**< how often expired log records, events and keys are looked for */
    /* [smtp] */
    char *smtp_host;               /**< relay host; empty disables mail */
    uint32_t smtp_port;            /**< relay port */
    char *smtp_from;               /**< envelope and header sender */
    bool smtp_starttls;            /**< upgrade with STARTTLS when offered */
    uint64_t smtp_min_interval_ms; /**< at most one exhausted-delivery mail per webhook per interval */
    /* [registry] */
    bool test_on_save; /**< SuperOffice saves require a passing test call */
    /* [metrics] */
    bool metrics_public;             /**< GET /metrics needs no key */
    uint32_t metrics_webhook_series; /**< webhooks (the lowest ids) that get series of their own; 0: none */
    /* [cluster] */
    /**
     * libpq connection string ("host=... dbname=...") or postgresql:// URI of
     * the cluster's database; "" (the default): a single node on the
     * embedded engine. Checked here for its shape only; libpq judges its
     * keys. It may hold a password: never log it.
     */
    char *cluster_postgres;
    char *cluster_migrate; /**< "auto": a node brings an older schema up to date at start; "off": it refuses one */
    /**
     * This node's name in the cluster (its leases, cluster_members); unique
     * per running node. "": the host name and the process id. A node with
     * a name of its own gives back, when it starts, the claims a previous
     * run under that name left (killed before its leases ended).
     */
    char *cluster_node;
    uint64_t cluster_lease_ms; /**< how long claimed deliveries stay a node's; 0: 4 x total_timeout + 60 s */
} hk_config;

/** Fills cfg with every default. Always succeeds; free with hk_config_free. */
void hk_config_defaults(hk_config *cfg);

/**
 * Reads the INI file at path (NULL: none) and then the environment into cfg,
 * which must hold defaults, and checks the rules between keys. On error
 * returns HK_ECONFIG and writes a one-line message naming the key and where
 * it was set ("file:line: section.key: ..." or "HOOKD_X_Y: section.key: ...")
 * into err; cfg then holds what was read so far (free it, do not use it).
 */
int hk_config_load(hk_config *cfg, const char *path, char *err, size_t errlen) HK_MUST_CHECK;

/**
 * Like hk_config_load for INI text in memory (len bytes, need not be
 * NUL-terminated), without the environment; name stands for the file in
 * messages. For tests and the fuzz harness.
 */
int hk_config_parse(hk_config *cfg, const char *name, const char *text, size_t len, char *err,
                    size_t errlen) HK_MUST_CHECK;

/** Which delivery attempts are logged ([log] deliveries). */
enum hk_log_deliveries { HK_LOG_DELIVERIES_OFF, HK_LOG_DELIVERIES_FAILURES, HK_LOG_DELIVERIES_ALL };

/** Parses "off", "failures" or "all" into an hk_log_deliveries; -1 for anything else. */
int hk_log_deliveries_parse(const char *v);

/**
 * Parses a retry schedule (see hk_config.retry_schedule) into a malloc'd
 * array of delays in ms that the caller frees; *n is its length. On error
 * returns HK_ECONFIG with the reason (naming the entry) in why, and leaves
 * *delays and *n untouched.
 */
int hk_retry_delays_parse(const char *text, uint64_t **delays, size_t *n, char *why, size_t whylen) HK_MUST_CHECK;

/**
 * Judges the shape of a [cluster] postgres value: empty, a postgres:// or
 * postgresql:// URI, or libpq's key = value pairs. 0, or HK_ECONFIG with
 * the reason in why (never echoing the value: it may hold a password).
 */
int hk_conninfo_check(const char *v, char *why, size_t whylen) HK_MUST_CHECK;

/** The longest [cluster] node name (it is stored in every lease the node takes). */
#define HK_CLUSTER_NODE_NAME_MAX 100

/** A [cluster] node name: empty, or up to HK_CLUSTER_NODE_NAME_MAX letters, digits, '.', '_', '-', ':' or '/'.
 * HK_ECONFIG (why says it) otherwise. */
int hk_node_name_check(const char *v, char *why, size_t whylen) HK_MUST_CHECK;

/** Sets one key ("section", "key", "value") with the same checks as the file. */
int hk_config_set(hk_config *cfg, const char *section, const char *key, const char *value, char *err,
                  size_t errlen) HK_MUST_CHECK;

/** Frees the strings and arrays a config owns; safe on a zeroed or defaulted struct. */
void hk_config_free(hk_config *cfg);

/** Parses "10s", "500ms", "5m", "2h", "1d" or plain milliseconds into ms; -1 when malformed. */
int hk_parse_duration_ms(const char *s, uint64_t *out);

#endif
