/*
 * Unit test of authentication against a store that cannot be read: the
 * real HTTP server and API dispatcher on a private loop, a store in a
 * temporary directory, requests written into one end of a socketpair the
 * server adopts. A key whose stored record cannot be read gets 503 with
 * Retry-After in the dialect's error shape, never 401 or 403; a key that
 * is not there still gets 401, and a good key its answer.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "config.h"
#include "http_server.h"
#include "kv.h"
#include "log.h"
#include "store.h"
#include "tables.h"
#include "unit.h"

#define BROKEN_KEY "hk_this_key_has_a_record_that_cannot_be_read"

struct server {
    uv_loop_t loop;
    char dir[64];
    hk_config cfg;
    hk_store *store;
    hk_api_env env;
    hk_http_server *http;
    char good[HK_KEY_TEXT_LEN];
};

struct raw {
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
};

static int put_key_record(hk_txn *txn, void *arg)
{
    const struct raw *r = arg;
    return hk_put(txn, HK_DB_KEYS, r->key, r->klen, r->val, r->vlen, 0);
}

static void server_open(struct server *s)
{
    memset(s, 0, sizeof(*s));
    uv_loop_init(&s->loop);
    snprintf(s->dir, sizeof(s->dir), "/tmp/hk-auth-test-XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        abort();
    hk_config_defaults(&s->cfg);
    hk_store_opts so = {.data_dir = s->dir, .map_size = 16u << 20, .max_batch = 100};
    CHECK_INT(hk_store_open(&s->store, &s->loop, &so), 0);
    /* An admin with a good key. */
    hk_key key;
    hk_key_make(&key, 0, NULL, 1, s->good);
    hk_op op = {.type = HK_OP_USER_PUT, .now_ms = 1};
    snprintf(op.u.user_put.user.code, sizeof(op.u.user_put.user.code), "admin");
    op.u.user_put.user.perms = HK_PERM_ALL;
    op.u.user_put.key = &key;
    CHECK_INT(hk_store_apply(s->store, &op), 0);
    /* A key whose record is not one this version (or any) can read: reading it fails. */
    uint8_t hash[32];
    hk_key_hash(BROKEN_KEY, strlen(BROKEN_KEY), hash);
    struct raw r = {hash, 32, "\x01\x02\x03", 3};
    CHECK_INT(hk_kv_write_sync(hk__store_kv(s->store), put_key_record, &r), 0);

    s->env = (hk_api_env){.loop = &s->loop, .cfg = &s->cfg, .db = s->store, .router = hk_api_router(), .ready = true};
    CHECK_INT(hk_http_server_create(&s->http, &s->loop, &s->cfg, hk_api_dispatch, &s->env, hk_api_error_body), 0);
    hk_http_server_on_head(s->http, hk_api_on_head, hk_api_slot_free);
}

static void server_close(struct server *s)
{
    hk_http_server_shutdown(s->http, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    hk_http_server_free(s->http);
    hk_router_free(s->env.router);
    hk_store_close(s->store);
    CHECK_INT(uv_loop_close(&s->loop), 0);
    hk_config_free(&s->cfg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s->dir);
}

/* Sends one request (the whole text) on a new connection and returns everything the server wrote until it
 * closed the connection (malloc'd). */
static char *exchange(struct server *s, const char *request)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    CHECK_INT(hk_http_server_adopt(s->http, sv[0], "test"), 0);
    size_t len = strlen(request);
    CHECK_INT(write(sv[1], request, len), (long long)len);
    size_t cap = 65536, n = 0;
    char *out = hk_calloc(1, cap + 1);
    for (int i = 0; i < 100000; i++) {
        uv_run(&s->loop, UV_RUN_NOWAIT);
        ssize_t got = recv(sv[1], out + n, cap - n, MSG_DONTWAIT);
        if (got == 0)
            break;
        if (got > 0)
            n += (size_t)got;
        if (n == cap)
            break;
    }
    out[n] = '\0';
    close(sv[1]);
    return out;
}

/* True when s is not NULL and contains part. */
static bool contains(const char *s, const char *part)
{
    return s != NULL && strstr(s, part) != NULL;
}

static int status_of(const char *response)
{
    return strncmp(response, "HTTP/1.1 ", 9) == 0 ? atoi(response + 9) : -1;
}

static json_t *body_of(const char *response)
{
    const char *b = strstr(response, "\r\n\r\n");
    return b ? json_loads(b + 4, 0, NULL) : NULL;
}

/* A request that asks the server to close the connection after its answer. */
static char *request(const char *method, const char *path, const char *auth_line, const char *body)
{
    char *r = hk_malloc(4096);
    if (body == NULL)
        snprintf(r, 4096, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n", method, path, auth_line);
    else
        snprintf(r, 4096,
                 "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%sContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n%s",
                 method, path, auth_line, strlen(body), body);
    return r;
}

static char *call(struct server *s, const char *method, const char *path, const char *auth_line, const char *body)
{
    char *req = request(method, path, auth_line, body);
    char *out = exchange(s, req);
    free(req);
    return out;
}

static void test_a_key_that_cannot_be_read_gets_503_in_every_dialect(void)
{
    struct server s;
    server_open(&s);
    char good[128];
    snprintf(good, sizeof(good), "Authorization: Bearer %s\r\n", s.good);

    /* SuperOffice, a read. */
    char *out = call(&s, "GET", "/api/v1/Webhook", "Authorization: Bearer " BROKEN_KEY "\r\n", NULL);
    CHECK_INT(status_of(out), 503);
    CHECK(strstr(out, "\r\nRetry-After: 5\r\n") != NULL);
    CHECK(strstr(out, "WWW-Authenticate") == NULL);
    json_t *j = body_of(out);
    CHECK(j != NULL && json_is_string(json_object_get(j, "Error")));
    CHECK_STR(json_string_value(json_object_get(j, "ErrorType")), "ServerError");
    CHECK(contains(json_string_value(json_object_get(j, "Message")), "credentials could not be checked"));
    json_decref(j);
    free(out);

    /* EnergyCAP, a write with a body: refused before the body is read. */
    out = call(&s, "POST", "/api/v3/webhook", "ECI-ApiKey: " BROKEN_KEY "\r\n", "{}");
    CHECK_INT(status_of(out), 503);
    CHECK(strstr(out, "\r\nRetry-After: 5\r\n") != NULL);
    j = body_of(out);
    CHECK(j != NULL);
    CHECK_INT(json_integer_value(json_object_get(j, "status")), 503);
    CHECK(contains(json_string_value(json_object_get(j, "message")), "credentials could not be checked"));
    json_decref(j);
    free(out);

    /* Ivanti, with its key form. */
    out = call(&s, "POST", "/api/rest/Webhooks/Execute?extension=x", "Authorization: rest_api_key=" BROKEN_KEY "\r\n",
               "{\"a\":1}");
    CHECK_INT(status_of(out), 503);
    CHECK(strstr(out, "\r\nRetry-After: 5\r\n") != NULL);
    CHECK(strstr(out, "ISM_4001") == NULL);
    j = body_of(out);
    CHECK(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "ErrorCode")), "UnhandledSystemException-");
    json_decref(j);
    free(out);

    /* Basic with the user code. */
    out = call(&s, "GET", "/api/v3/webhook",
               "Authorization: Basic YWRtaW46aGtfdGhpc19rZXlfaGFzX2FfcmVjb3JkX3RoYXRfY2Fubm90X2JlX3JlYWQ=\r\n", NULL);
    CHECK_INT(status_of(out), 503);
    free(out);

    /* A key that is not there is still a wrong key; a good one still works. */
    out = call(&s, "GET", "/api/v1/Webhook", "Authorization: Bearer hk_no_such_key\r\n", NULL);
    CHECK_INT(status_of(out), 401);
    free(out);
    out = call(&s, "GET", "/api/v1/Webhook", good, NULL);
    CHECK_INT(status_of(out), 200);
    free(out);
    server_close(&s);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    hk_log_set_level(HK_LOG_ERROR);
    test_a_key_that_cannot_be_read_gets_503_in_every_dialect();
    return unit_done();
}
