/*
 * Unit tests of the attempt record's versions: a version 1 record (the
 * request kept whole) written as the previous release wrote it still reads
 * in full, brief and through the peek the recovery uses; a lean record
 * (version 2) keeps the parts of its request instead of the request, and
 * hk_attempt_request renders from them and the event exactly the request
 * the sending path renders; the op codec carries a lean record to the
 * write-ahead log and back, and still reads an op written before.
 */
#include "delivery.h"
#include "http_client.h"
#include "kv.h"
#include "state_fixture.h"
#include "tables.h"

struct raw {
    const void *key, *val;
    size_t klen, vlen;
};

static int put_log(hk_txn *txn, void *arg)
{
    const struct raw *r = arg;
    return hk_put(txn, HK_DB_LOG, r->key, r->klen, r->val, r->vlen, 0);
}

static int count(const hk_attempt *a, void *arg)
{
    HK_UNUSED(a);
    ++*(int *)arg;
    return 0;
}

/* A version 1 record, byte for byte as the release before version 2 wrote it. */
static void test_version_1_reads(hk_store *s, uint32_t wid)
{
    hk__wbuf b = {0};
    hk__w_u8(&b, 1);
    hk__w_u64(&b, 1700000000500ull); /* started_ms */
    hk__w_u64(&b, 3);                /* event_id */
    hk__w_u32(&b, 2);                /* attempt */
    hk__w_u64(&b, 12);               /* duration_ms */
    hk__w_u8(&b, 1);                 /* flags: success */
    hk__w_u32(&b, 200);              /* status */
    hk__w_u32(&b, 5);                /* user_id */
    hk__w_u64(&b, 0);                /* next_due_ms */
    const char *texts[] = {"v1.event",
                           "00000000-0000-0000-0000-000000000003",
                           "",
                           "http://r.example/x",
                           "POST /x HTTP/1.1\r\nHost: r.example\r\n\r\n{\"a\":1}",
                           "HTTP/1.1 200 OK\r\n\r\n"};
    for (size_t i = 0; i < HK_ARRAY_SIZE(texts); i++)
        hk__w_str(&b, texts[i]);
    uint8_t k[12];
    hk_be32(k, wid);
    hk_be64(k + 4, 77);
    struct raw r = {k, b.p, sizeof(k), b.len};
    CHECK_INT(hk_kv_write_sync(hk__store_kv(s), put_log, &r), 0);

    hk_attempt a;
    CHECK_INT(hk_store_attempt_get(s, wid, 77, &a), 0);
    CHECK(a.id == 77 && a.webhook_id == wid && a.event_id == 3 && a.attempt == 2 && a.duration_ms == 12);
    CHECK(a.success && !a.exhausted && !a.sync && !a.lean && a.status == 200 && a.user_id == 5);
    CHECK(a.started_ms == 1700000000500ull);
    CHECK_STR(a.event_name, "v1.event");
    CHECK_STR(a.url, "http://r.example/x");
    CHECK_INT(a.request_len, strlen(texts[4]));
    CHECK_STR(a.request, texts[4]);
    CHECK_STR(a.response, texts[5]);
    CHECK(a.user_agent == NULL && a.webhook_name == NULL && a.sig_so == NULL);
    /* Its request is what the detail shows, as it was kept. */
    char *req;
    size_t len;
    CHECK_INT(hk_attempt_request(s, &a, &req, &len), 0);
    CHECK(len == a.request_len && memcmp(req, a.request, len) == 0);
    free(req);
    hk_attempt_free(&a);

    hk__attempt_brief p;
    CHECK_INT(hk__attempt_peek(b.p, b.len, &p), 0);
    CHECK(p.started_ms == 1700000000500ull && p.event_id == 3 && p.success && !p.exhausted);
    free(b.p);
}

int main(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    hk_webhook w;
    fx_webhook(&w, "Lean hook", "lean.event", NULL);
    free(w.secret);
    w.secret = hk_strdup("lean-secret");
    w.headers = hk_calloc(1, sizeof(*w.headers));
    w.headers[0] = (hk_pair){hk_strdup("X-Tenant"), hk_strdup("t1")};
    w.nheaders = 1;
    w.properties = hk_calloc(1, sizeof(*w.properties));
    w.properties[0] = (hk_pair){hk_strdup("env"), hk_strdup("\"test\"")};
    w.nproperties = 1;
    uint32_t wid = fx_create(s, &w);

    test_version_1_reads(s, wid);

    /* An event, and a request for it made as the engine makes one. */
    hk_op sig;
    CHECK_INT(fx_signal(s, "lean.event", 5000, NULL, 1, &sig), 0);
    uint64_t eid = sig.u.signal.event_id;
    hk_op_free_out(&sig);
    hk_event ev;
    CHECK_INT(hk_store_event_get(s, eid, &ev), 0);
    char uuid[HK_EVENT_UUID_LEN];
    hk_event_uuid_str(ev.uuid, uuid);
    hk_target t = {0};
    hk_target_from_webhook(&t, &w);
    hk_body *body = hk_body_new(NULL, &ev, &t);
    uint64_t sent_ms = 1800000123456ull;
    hk_delivery_sigs sigs;
    hk_delivery_sign(&t, body, uuid, sent_ms, &sigs);
    CHECK(sigs.so[0] != '\0' && strncmp(sigs.standard, "v1,", 3) == 0);
    /* The body's signature is kept with it: a second signer of the same secret finds it. */
    CHECK_INT(body->nsigs, 1);
    hk_delivery_sign(&t, body, uuid, sent_ms + 1000, &sigs);
    CHECK_INT(body->nsigs, 1);
    hk_buf headers = HK_BUF_INIT, expected = HK_BUF_INIT;
    hk_delivery_headers_parts(&headers, ev.name, uuid, wid, 1, sent_ms, &sigs, t.headers, NULL);
    CHECK_INT(hk_client_head(&expected, "POST", t.url, "hookd/test", body->len, hk_buf_cstr(&headers)), 0);
    hk_buf_append(&expected, body->data, body->len);
    CHECK(strstr(hk_buf_cstr(&expected), "X-Tenant: t1\r\n") != NULL);
    CHECK(strstr(hk_buf_cstr(&expected), "\"WebhookName\":\"Lean hook\"") != NULL);

    /* A lean record of it: stored in version 2 without the request. */
    hk_attempt rec = {.webhook_id = wid,
                      .event_id = eid,
                      .event_name = ev.name,
                      .event_uuid = uuid,
                      .attempt = 2,
                      .started_ms = sent_ms,
                      .success = true,
                      .status = 204,
                      .error = "",
                      .url = t.url,
                      .response = "HTTP/1.1 204 No Content\r\n\r\n",
                      .response_len = 27,
                      .user_id = 1,
                      .lean = true,
                      .user_agent = "hookd/test",
                      .webhook_name = body->name,
                      .props = body->props,
                      .custom_headers = t.headers,
                      .sig_so = sigs.so,
                      .sig_standard = sigs.standard};
    hk_op op = {.type = HK_OP_ATTEMPT, .now_ms = sent_ms, .u.attempt = {.rec = &rec, .disable_after = 100}};

    /* Through the write-ahead log's codec first: the lean parts travel with the op. */
    uint8_t *enc;
    size_t enc_len;
    CHECK_INT(hk_op_encode(&op, &enc, &enc_len), 0);
    hk_op back;
    CHECK_INT(hk_op_decode(&back, enc, enc_len), 0);
    const hk_attempt *br = back.u.attempt.rec;
    CHECK(br->lean && br->request == NULL);
    CHECK_STR(br->user_agent, "hookd/test");
    CHECK_STR(br->custom_headers, "X-Tenant: t1\r\n");
    CHECK_STR(br->sig_so, sigs.so);
    CHECK_STR(br->sig_standard, sigs.standard);
    hk_op_decode_free(&back);
    free(enc);

    CHECK_INT(hk_store_apply(s, &op), 0);
    uint64_t lid = op.u.attempt.log_id;
    hk_attempt a;
    CHECK_INT(hk_store_attempt_get(s, wid, lid, &a), 0);
    CHECK(a.lean && a.request == NULL && a.request_len == 0 && a.success && a.status == 204);
    CHECK_STR(a.webhook_name, "Lean hook");
    CHECK_STR(a.props, "\"env\":\"test\"");
    CHECK_STR(a.response, "HTTP/1.1 204 No Content\r\n\r\n");

    /* Rendered again: exactly the bytes the sending path made. */
    char *req;
    size_t len;
    CHECK_INT(hk_attempt_request(s, &a, &req, &len), 0);
    CHECK_INT(len, expected.len);
    CHECK(memcmp(req, expected.data, len) == 0);
    free(req);
    hk_attempt_free(&a);

    /* The brief listing and the peek read version 2 alike. */
    int n = 0;
    CHECK_INT(hk_store_attempts_each_brief(s, wid, 0, true, count, &n), 0);
    CHECK_INT(n, 2);
    n = 0;
    CHECK_INT(hk_store_attempts_each(s, wid, 0, true, count, &n), 0);
    CHECK_INT(n, 2);

    /* The event gone, the request cannot be rendered: said so, not made up. */
    a = (hk_attempt){.lean = true, .event_id = eid + 1000};
    CHECK_INT(hk_attempt_request(s, &a, &req, &len), HK_ENOTFOUND);

    hk_buf_free(&headers);
    hk_buf_free(&expected);
    hk_body_ref(body, -1);
    hk_target_free(&t);
    hk_event_free(&ev);
    hk_webhook_free(&w);
    hk_store_close(s);
    fx_rmdir();
    return unit_done();
}
