/*
 * model.h: hookd's typed records. One struct per table; the module that owns
 * the table holds the struct's one codec (versioned: the first byte of every
 * stored record is its format version, so a later format can still read the
 * old one). Nothing above the state layer sees stored bytes: services and
 * the API views work with these structs only.
 *
 * Ownership: every pointer member of a record is owned by the record and
 * freed by its _free function; _free is safe on a zeroed struct and leaves
 * it zeroed. _copy makes a deep copy (the destination must be zeroed or
 * freed).
 */
#ifndef HK_MODEL_H
#define HK_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* ---- limits every writer checks before a record reaches the store ------ */

#define HK_WEBHOOK_NAME_MAX 64
#define HK_WEBHOOK_DESC_MAX 1024
#define HK_WEBHOOK_URL_MAX 2048
#define HK_WEBHOOK_SECRET_MAX 512
#define HK_WEBHOOK_EVENTS_MAX 100
#define HK_EVENT_NAME_MAX 128
#define HK_WEBHOOK_EXTENSION_MAX 128
#define HK_IDEMPOTENCY_KEY_MAX 255
#define HK_USER_CODE_MAX 64
#define HK_USER_NAME_MAX 128
#define HK_NODE_NAME_MAX 256   /**< bytes in a node's or an account's name */
#define HK_NODE_DEPTH_MAX 1000 /**< ancestors a node may have at most; a deeper chain is refused */
#define HK_EVENT_UUID_LEN 37   /**< 36 characters and NUL */
#define HK_LAST_ERROR_MAX 512  /**< bytes kept of a webhook's last error */

/* ---- webhook ------------------------------------------------------------ */

/** A webhook's state. The dialects spell them "Active", "Stopped", "TooManyErrors". */
enum hk_webhook_state {
    HK_WH_ACTIVE = 0,         /**< deliveries are sent */
    HK_WH_STOPPED = 1,        /**< stopped by a client: deliveries stay queued (parked) */
    HK_WH_TOO_MANY_ERRORS = 2 /**< disabled by the failure rules: deliveries stay queued (parked) */
};

/** The state's name as the dialects write it. */
const char *hk_webhook_state_name(enum hk_webhook_state s);

/** Parses a state name (case-insensitive); -1 when unknown. */
int hk_webhook_state_parse(const char *s);

/** A name/value pair (custom headers; Properties, whose value is JSON text). */
typedef struct hk_pair {
    char *name;  /**< as given */
    char *value; /**< header: the value; property: compact JSON text of the value */
} hk_pair;

/** The one webhook behind every dialect (table HK webhooks, owned by state/webhook.c). */
typedef struct hk_webhook {
    uint32_t id;                /**< 1.., from a sequence, never reused; 0 = not yet stored */
    char *name;                 /**< Name (never NULL once initialised; "" when empty) */
    char *description;          /**< Description ("" when none) */
    char *url;                  /**< TargetUrl, as parsed and accepted by hk_url_parse */
    char *secret;               /**< signing secret ("" = no signature headers) */
    char *prev_secret;          /**< the replaced secret ("" when none) */
    uint64_t prev_secret_until; /**< prev_secret still signs until this time (ms) */
    enum hk_webhook_state state;
    char **events;          /**< subscribed event names, in the order given */
    size_t nevents;         /**< entries in events */
    hk_pair *headers;       /**< custom request headers, in the order given */
    size_t nheaders;        /**< entries in headers */
    hk_pair *properties;    /**< Properties, in the order given */
    size_t nproperties;     /**< entries in properties */
    char **notify;          /**< addresses mailed about failures (ErrorsEmail / mailingList) */
    size_t nnotify;         /**< entries in notify */
    bool locked;            /**< an operator lock: clients cannot change it, the failure rules cannot disable it */
    char *extension;        /**< Ivanti extension name, NULL when none (unique among webhooks) */
    uint64_t registered_ms; /**< when created */
    uint32_t registered_by; /**< user id that created it */
    uint64_t updated_ms;    /**< when last changed */
    uint32_t updated_by;    /**< user id that last changed it */
} hk_webhook;

/** Initialises w as an empty Active webhook (every string ""). */
void hk_webhook_init(hk_webhook *w);
void hk_webhook_free(hk_webhook *w);
void hk_webhook_copy(hk_webhook *dst, const hk_webhook *src);
/** True when w subscribes to event name (exact match). */
bool hk_webhook_subscribes(const hk_webhook *w, const char *name);

/** A webhook's delivery statistics (one record per webhook). */
typedef struct hk_webhook_stats {
    uint64_t calls;                     /**< attempts made */
    uint64_t errors;                    /**< attempts that failed */
    uint32_t consecutive;               /**< failures since the last success */
    uint64_t last_error_ms;             /**< when the last error happened; 0 = never */
    char last_error[HK_LAST_ERROR_MAX]; /**< text of the last error */
} hk_webhook_stats;

/** successRate in percent (0 until a delivery has been attempted). */
double hk_webhook_success_rate(const hk_webhook_stats *st);

/* ---- event and queued delivery -------------------------------------------- */

/** An accepted event. Strings are owned (hk_event_free). */
typedef struct hk_event {
    uint64_t id;         /**< from a sequence, increasing */
    uint64_t ts_ms;      /**< when it was accepted */
    int64_t primary_key; /**< PrimaryKey */
    uint32_t user_id;    /**< the signalling user (ChangedByAssociateId) */
    uint8_t uuid[16];    /**< EventId */
    char *name;          /**< event name, e.g. "contact.created" */
    char *changes;       /**< JSON array text of Data's keys */
    size_t changes_len;  /**< bytes in changes */
    char *data;          /**< Data as compact JSON object text */
    size_t data_len;     /**< bytes in data */
} hk_event;

void hk_event_free(hk_event *e);
/** Formats uuid as 8-4-4-4-12 lower-case hex. */
void hk_event_uuid_str(const uint8_t uuid[16], char out[HK_EVENT_UUID_LEN]);

/** A pending delivery of one event to one webhook. */
typedef struct hk_delivery {
    uint32_t webhook_id; /**< the webhook */
    uint64_t event_id;   /**< the event */
    uint64_t due_ms;     /**< when it is due */
    uint32_t attempts;   /**< attempts made so far */
    uint64_t first_ms;   /**< when the first attempt was made (0 = none yet) */
} hk_delivery;

/* ---- attempt log ----------------------------------------------------------- */

#define HK_ATTEMPT_MAX_TEXT 65536 /**< bytes kept of a request or response text */

/** One attempt, as the attempt log keeps it. Strings are owned (hk_attempt_free). */
typedef struct hk_attempt {
    uint64_t id;          /**< log id (assigned when stored) */
    uint32_t webhook_id;  /**< the webhook */
    uint64_t event_id;    /**< the event (0 for a synchronous call that has none) */
    char *event_name;     /**< the event's name */
    char *event_uuid;     /**< EventId text */
    uint32_t attempt;     /**< 1 for the first attempt */
    uint64_t started_ms;  /**< wall clock at start */
    uint64_t duration_ms; /**< until the outcome */
    bool success;         /**< a 2xx arrived */
    int status;           /**< HTTP status, 0 when no response came */
    char *error;          /**< reason when not a 2xx ("" otherwise) */
    char *url;            /**< the URL the request was sent to */
    char *request;        /**< request head and body as sent */
    size_t request_len;   /**< bytes in request */
    char *response;       /**< status line, headers and (cut) body received */
    size_t response_len;  /**< bytes in response */
    uint32_t user_id;     /**< the user behind the event */
    bool exhausted;       /**< no retry follows */
    uint64_t next_due_ms; /**< when the retry is due (0 when none) */
    bool disabled;        /**< this outcome set the webhook to TooManyErrors */
    bool sync;            /**< a synchronous call (Execute, Test, custom action): cannot be resent */
    /**
     * A lean record: the request is not kept (request NULL, request_len
     * 0) but rendered again from the event, which the store keeps longer
     * than its attempt records, and the parts below, which are what made
     * this attempt's request differ from another's (services/delivery.h,
     * hk_attempt_request). The engine writes successful queued deliveries
     * so; failed attempts and synchronous calls keep their request.
     */
    bool lean;
    char *user_agent;     /**< lean: the User-Agent sent */
    char *webhook_name;   /**< lean: the body's WebhookName */
    char *props;          /**< lean: the body's Properties members (`"key":value,...`, "" when none) */
    char *custom_headers; /**< lean: the webhook's custom header lines as sent ("Name: value\r\n"...) */
    char *sig_so;         /**< lean: X-SuperOffice-Signature ("" = unsigned: no signature headers) */
    char *sig_standard;   /**< lean: webhook-signature (webhook-id and -timestamp follow from the record) */
} hk_attempt;

void hk_attempt_free(hk_attempt *a);

/* ---- users, keys, nodes, accounts ------------------------------------------- */

enum {
    HK_PERM_VIEW = 1u << 0,     /**< ApplicationSettings:View */
    HK_PERM_MANAGE = 1u << 1,   /**< ApplicationSettings:Manage */
    HK_PERM_ACCOUNTS = 1u << 2, /**< Accounts:Edit */
    HK_PERM_SIGNAL = 1u << 3,   /**< Events:Signal */
    HK_PERM_EXECUTE = 1u << 4,  /**< Webhooks:Execute */
    HK_PERM_METRICS = 1u << 5,  /**< Metrics:Read */
    HK_PERM_ALL = 0x3f,
    /** `all` before Metrics:Read existed: a user stored with every one of these bits holds `all` (hk_perm_allows). */
    HK_PERM_ALL_V1 = 0x1f
};

typedef struct hk_user {
    uint32_t id;                          /**< stable id, never reused */
    char code[HK_USER_CODE_MAX + 1];      /**< login code, unique case-insensitively */
    char full_name[HK_USER_NAME_MAX + 1]; /**< display name */
    unsigned perms;                       /**< HK_PERM_* bits */
    uint32_t top_node;                    /**< topmost node for account actions; 0 = none */
} hk_user;

/** An API key as stored: only its SHA-256 is kept. */
typedef struct hk_key {
    uint8_t hash[32];    /**< SHA-256 of the key text */
    uint32_t user_id;    /**< owner */
    uint64_t created_ms; /**< when created */
    bool revoked;        /**< revoked keys authenticate nobody */
    char short_id[9];    /**< 8 characters shown to operators */
} hk_key;

typedef struct hk_node {
    uint32_t id;                     /**< 1..UINT32_MAX */
    uint32_t parent;                 /**< parent node id; 0 for a root */
    char name[HK_NODE_NAME_MAX + 1]; /**< display name */
} hk_node;

typedef struct hk_account {
    uint32_t id;                     /**< 1..UINT32_MAX */
    uint32_t node;                   /**< the node it belongs to */
    char name[HK_NODE_NAME_MAX + 1]; /**< display name */
} hk_account;

#endif
