/*
 * smtp.h: a small SMTP client on the libuv loop, for plain-text mail to a
 * relay.
 *
 * One mail is one session: DNS on the loop (resolver.h, c-ares), TCP,
 * the 220 greeting, EHLO (HELO when EHLO is refused), optionally STARTTLS
 * (mbedTLS over memory buffers, the relay verified against a CA file with
 * its host name) and EHLO again, MAIL FROM, one RCPT TO per recipient,
 * DATA with CRLF line endings and dot-stuffing, QUIT. A timer bounds the
 * whole exchange. Nothing blocks the loop; failures are reported to the
 * caller's callback with a readable reason.
 *
 * At most HK_SMTP_MAX_SESSIONS sessions talk to the relay at once; further
 * mails wait in a queue of at most HK_SMTP_MAX_QUEUED.
 */
#ifndef HK_SMTP_H
#define HK_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common.h"

/** Sessions connected to the relay at once. */
#define HK_SMTP_MAX_SESSIONS 4
/** Mails waiting for a session; hk_smtp_send fails with UV_ENOBUFS past it. */
#define HK_SMTP_MAX_QUEUED 256
/** Bytes of one reply from the relay (all its lines) kept at most; more fails the session. */
#define HK_SMTP_MAX_REPLY 16384
/** Recipients of one mail at most. */
#define HK_SMTP_MAX_RCPT 50
/** The whole exchange, DNS included, when the options give 0. */
#define HK_SMTP_DEFAULT_TIMEOUT_MS 30000

typedef struct hk_smtp hk_smtp;

/** Settings of a client; copied by hk_smtp_create (strings too). */
typedef struct hk_smtp_opts {
    const char *host;    /**< relay host name or IP literal */
    uint16_t port;       /**< relay port */
    bool starttls;       /**< require STARTTLS before MAIL FROM; a relay that does not offer it fails the mail */
    const char *ca_file; /**< PEM CA bundle verifying the relay's certificate (NULL: the system bundle) */
    const char *helo;    /**< name given in EHLO/HELO (NULL: "localhost") */
    uint64_t timeout_ms; /**< bound on one whole exchange (0: HK_SMTP_DEFAULT_TIMEOUT_MS) */
} hk_smtp_opts;

/** One plain-text mail. Everything is copied by hk_smtp_send. */
typedef struct hk_smtp_mail {
    const char *from;      /**< envelope and header sender, a bare address */
    const char *const *to; /**< recipients, bare addresses */
    size_t nto;            /**< entries in to (1..HK_SMTP_MAX_RCPT) */
    const char *subject;   /**< UTF-8; encoded (RFC 2047) when not plain ASCII */
    const char *body;      /**< UTF-8 text; any line ending is sent as CRLF */
} hk_smtp_mail;

/**
 * Called once per mail on the loop thread, never from within hk_smtp_send:
 * status 0 when the relay accepted the message for at least one recipient,
 * else a negative code with a readable reason (valid during the call only),
 * e.g. "relay answered 550 to RCPT TO: ...", "timeout after 30000 ms",
 * "TLS: certificate verify failed: ...". UV_ECANCELED when the client closed.
 */
typedef void (*hk_smtp_cb)(int status, const char *error, void *arg);

/** Creates a client on loop. HK_EINVAL when host is empty. *out is freed by hk_smtp_close. */
int hk_smtp_create(hk_smtp **out, uv_loop_t *loop, const hk_smtp_opts *opts) HK_MUST_CHECK;

/**
 * Queues a mail. 0, or without calling cb: HK_EINVAL (no valid recipient,
 * or a sender or recipient that is not a plain address), UV_ENOBUFS (the
 * queue is full), HK_ESHUTDOWN (hk_smtp_close was called). Recipients that
 * are not plain addresses are skipped when others remain.
 */
int hk_smtp_send(hk_smtp *c, const hk_smtp_mail *mail, hk_smtp_cb cb, void *arg) HK_MUST_CHECK;

/**
 * Abandons every mail (callbacks run with UV_ECANCELED from within this
 * call), closes the connections and frees the client once its handles are
 * closed; closed(arg) then runs on the loop (closed may be NULL). Safe on
 * NULL (closed is then not called).
 */
void hk_smtp_close(hk_smtp *c, void (*closed)(void *arg), void *arg);

/** Mails queued or in progress. */
size_t hk_smtp_pending(const hk_smtp *c);

/**
 * True when addr is a plain address hookd will put in RCPT TO and To:
 * printable ASCII without blanks, <, >, quotes, parentheses, commas or
 * semicolons, one @ with text on both sides, at most 254 bytes.
 */
bool hk_smtp_address_ok(const char *addr);

#endif
