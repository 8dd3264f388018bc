/*
 * smtp_int.h: what the pieces of the SMTP client share. INTERNAL to the
 * SMTP client (smtp.c, smtp_session.c, smtp_reply.c, smtp_message.c);
 * nothing else includes it.
 *
 *   smtp.c          the API, the queue and the start and end of a session
 *   smtp_session.c  one session's conversation with the relay: DNS,
 *                   connect, greeting, EHLO/HELO, STARTTLS, MAIL, RCPT,
 *                   DATA, QUIT, reading and writing
 *   smtp_reply.c    the reply parser: lines, multi-line replies, codes
 *   smtp_message.c  the address check and the message as sent after DATA
 */
#ifndef HK_SMTP_INT_H
#define HK_SMTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "resolver.h"
#include "smtp.h"
#include "tls.h"

/** Bytes of an error text, NUL included. */
#define ERROR_TEXT_LEN 600
/** Resolved addresses of the relay tried in turn. */
#define MAX_ADDRS 8

/** Where a session is, in the order a mail goes. */
enum state {
    ST_QUEUED,     /**< waiting for a free session slot */
    ST_KICK,       /**< started; its timer runs at once on the next loop iteration */
    ST_RESOLVING,  /**< looking the relay up */
    ST_CONNECTING, /**< TCP connect in flight */
    ST_GREETING,   /**< waiting for the 220 greeting */
    ST_EHLO,       /**< EHLO sent */
    ST_HELO,       /**< HELO sent (EHLO was refused) */
    ST_STARTTLS,   /**< STARTTLS sent */
    ST_HANDSHAKE,  /**< TLS handshake in flight */
    ST_MAIL,       /**< MAIL FROM sent */
    ST_RCPT,       /**< RCPT TO sent */
    ST_DATA,       /**< DATA sent */
    ST_BODY,       /**< the message sent */
    ST_QUIT,       /**< QUIT sent: the mail is reported, the rest is courtesy */
    ST_CLOSING     /**< ended; freed once its handles are closed */
};

/** A reply being received from the relay (smtp_reply.c). */
struct hk__smtp_reply {
    char *buf;         /**< all its lines so far; HK_SMTP_MAX_REPLY bytes (owned by the session) */
    size_t len;        /**< bytes in buf */
    size_t line_start; /**< where the current line begins in buf */
};

/** One mail, from the queue to the end of its conversation. */
struct session {
    hk_smtp *c;                               /**< the client */
    struct session *prev, *next;              /**< the client's active list or queue */
    enum state state;                         /**< where it is */
    char *from;                               /**< envelope sender (owned) */
    char **to;                                /**< recipients (owned, each and the array) */
    size_t nto;                               /**< entries in to */
    size_t rcpt_next;                         /**< next recipient to send RCPT TO for */
    size_t rcpt_ok;                           /**< recipients the relay accepted */
    char rcpt_err[300];                       /**< the last refusal */
    char *message;                            /**< DATA payload, dot-stuffed, ending in CRLF.CRLF (owned) */
    size_t message_len;                       /**< bytes in message */
    hk_smtp_cb cb;                            /**< the caller's callback, run once */
    void *arg;                                /**< its argument */
    bool reported;                            /**< cb has run */
    bool tls_offered;                         /**< the last EHLO listed STARTTLS */
    uv_timer_t timer;                         /**< the kick, then the bound on the whole exchange */
    uv_tcp_t tcp;                             /**< the connection to the relay */
    uv_connect_t connect;                     /**< its connect request */
    hk_resolve_req *dns;                      /**< the relay's lookup in flight, NULL when none */
    bool tcp_open;                            /**< tcp is initialised and not closing */
    int handles;                              /**< open handles (timer, tcp) */
    struct sockaddr_storage addrs[MAX_ADDRS]; /**< the relay's addresses, port set */
    size_t naddrs, addr_next;                 /**< entries in addrs; the next one to try */
    hk_tls_conn *tls;                         /**< TLS after STARTTLS (NULL before); freed with the session */
    struct hk__smtp_reply reply;              /**< the reply being received */
};

/** The client (hk_smtp in smtp.h). */
struct hk_smtp {
    uv_loop_t *loop;                         /**< the loop everything runs on */
    char *host;                              /**< the relay (owned) */
    uint16_t port;                           /**< its port */
    bool starttls;                           /**< STARTTLS required */
    char *ca_file;                           /**< CA bundle for the relay (owned; NULL: the system's) */
    char *helo;                              /**< the EHLO/HELO name, a plain token (owned) */
    uint64_t timeout_ms;                     /**< bound on one whole exchange */
    hk_tls_ctx *tls;                         /**< made on the first STARTTLS (owned; NULL until then) */
    hk_resolver *resolver;                   /**< DNS on the loop (owned) */
    struct session *active;                  /**< sessions talking to the relay */
    struct session *queue_head, *queue_tail; /**< mails waiting, oldest first */
    size_t nactive, nqueued, nsessions; /**< nsessions: allocated, closing ones included, plus one for the resolver */
    bool closing;                       /**< hk_smtp_close was called */
    void (*closed)(void *arg);          /**< hk_smtp_close's callback */
    void *closed_arg;                   /**< its argument */
};

/* ---- smtp.c: a session's start and end ----------------------------------- */

/** Runs the caller's callback once with status and a reason (printf format; NULL for none). */
void hk__smtp_report(struct session *s, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** Reports status with a reason and closes the session; nothing once it is closing. */
void hk__smtp_fail(struct session *s, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** Ends a session (reporting nothing: call hk__smtp_report first) and lets the next queued mail start. */
void hk__smtp_session_close(struct session *s);

/** Frees a closing session once its handles are closed. */
void hk__smtp_maybe_free(struct session *s);

/* ---- smtp_session.c: the conversation ------------------------------------ */

/** Starts the conversation of s, just made active: its timer kicks it off on the next loop iteration. */
void hk__smtp_session_begin(struct session *s);

/* ---- smtp_reply.c: the reply parser ------------------------------------- */

/**
 * Takes bytes of data into r until one reply is complete. Returns 0 with
 * *code the reply's code (0..999) when its last line ended after *used
 * bytes, or with *code -1 when all len bytes were taken and the reply goes
 * on; HK_ETOOBIG when it would pass HK_SMTP_MAX_REPLY bytes, HK_EPROTO for
 * a malformed line (*used counts the bytes taken either way).
 */
int hk__smtp_reply_feed(struct hk__smtp_reply *r, const char *data, size_t len, size_t *used, int *code);

/** Forgets the reply taken, for the next one. */
void hk__smtp_reply_reset(struct hk__smtp_reply *r);

/** The reply on one line (continuation lines joined with " / ", control bytes as '?'), for errors. */
void hk__smtp_reply_text(const struct hk__smtp_reply *r, char *out, size_t outlen);

/** True when a line of the reply (an EHLO reply) names the extension kw. */
bool hk__smtp_reply_has(const struct hk__smtp_reply *r, const char *kw);

/* ---- smtp_message.c: the message ---------------------------------------- */

/**
 * The message for m as sent after DATA: headers (From, To with the nto
 * addresses of to, Subject encoded per RFC 2047 when not ASCII, Date,
 * Message-ID, MIME), then the body with CRLF lines, dot-stuffed, ending in
 * CRLF.CRLF. Returns a malloc'd buffer of *len bytes the caller frees.
 */
char *hk__smtp_message(const hk_smtp_mail *m, char **to, size_t nto, size_t *len);

#endif
