/*
 * Unit tests of reading a data directory written before the records were
 * versioned: JSON webhooks, attempt records, users, nodes and accounts,
 * 21-byte keys, and the unversioned binary statistics, events, queue
 * entries (without the by-event index) and Idempotency-Keys. Each is read
 * through the queries and the ops as version 0, and written back in the
 * current format (first byte 1) when changed.
 */
#include "auth.h"
#include "kv.h"
#include "state_fixture.h"
#include "tables.h"

struct raw {
    enum hk_db db;
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
};

static int put_raw(hk_txn *txn, void *arg)
{
    const struct raw *r = arg;
    return hk_put(txn, r->db, r->key, r->klen, r->val, r->vlen, 0);
}

static void raw_put(hk_store *s, enum hk_db db, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct raw r = {db, key, klen, val, vlen};
    CHECK_INT(hk_kv_write_sync(hk__store_kv(s), put_raw, &r), 0);
}

static int del_raw(hk_txn *txn, void *arg)
{
    const struct raw *r = arg;
    int rc = hk_del(txn, r->db, r->key, r->klen, NULL, 0);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

/* The first byte of a stored value (-1 when absent). */
static int first_byte(hk_store *s, enum hk_db db, const void *key, size_t klen)
{
    hk_txn *txn;
    hk_val v;
    int b = -1;
    if (hk_kv_read(hk__store_kv(s), &txn) != 0)
        return -2;
    if (hk_get(txn, db, key, klen, &v) == 0 && v.len > 0)
        b = ((const uint8_t *)v.data)[0];
    hk_txn_end(txn);
    return b;
}

static const char old_webhook[] =
    "{\"id\":1,\"name\":\"legacy\",\"description\":\"from before\",\"events\":[\"old.e\"],"
    "\"url\":\"https://r.example.com/x\",\"secret\":\"s2\",\"state\":\"Active\",\"type\":\"webhook\","
    "\"headers\":{\"X-A\":\"1\",\"X-B\":\"two\"},\"properties\":{\"env\":\"test\",\"n\":{\"deep\":[1,2.5,null]}},"
    "\"notify\":[\"a@b.com\"],\"locked\":false,\"extension\":\"legacy-ext\",\"registered\":1700000000000,"
    "\"registeredBy\":1,\"updated\":1700000001000,\"updatedBy\":2,\"prevSecret\":\"s1\","
    "\"prevSecretUntil\":1700003600000}";

static void check_legacy_webhook(const hk_webhook *w)
{
    CHECK_INT(w->id, 1);
    CHECK_STR(w->name, "legacy");
    CHECK_STR(w->description, "from before");
    CHECK(w->nevents == 1 && strcmp(w->events[0], "old.e") == 0);
    CHECK_STR(w->url, "https://r.example.com/x");
    CHECK_STR(w->secret, "s2");
    CHECK_STR(w->prev_secret, "s1");
    CHECK_INT(w->prev_secret_until, 1700003600000ull);
    CHECK_INT(w->state, HK_WH_ACTIVE);
    CHECK(w->nheaders == 2 && strcmp(w->headers[1].name, "X-B") == 0 && strcmp(w->headers[1].value, "two") == 0);
    CHECK(w->nproperties == 2);
    CHECK_STR(w->properties[0].value, "\"test\"");
    CHECK_STR(w->properties[1].value, "{\"deep\":[1,2.5,null]}");
    CHECK(w->nnotify == 1 && strcmp(w->notify[0], "a@b.com") == 0);
    CHECK(!w->locked);
    CHECK_STR(w->extension, "legacy-ext");
    CHECK_INT(w->registered_ms, 1700000000000ull);
    CHECK_INT(w->registered_by, 1);
    CHECK_INT(w->updated_ms, 1700000001000ull);
    CHECK_INT(w->updated_by, 2);
}

static void test_webhook_stats_and_log(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    uint8_t k1[4] = {0, 0, 0, 1};
    raw_put(s, HK_DB_WEBHOOKS, k1, 4, old_webhook, strlen(old_webhook));
    raw_put(s, HK_DB_SUBSCRIPTIONS, "old.e", 5, k1, 4);
    raw_put(s, HK_DB_EXTENSIONS, "legacy-ext", 10, k1, 4);
    uint8_t seq[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    raw_put(s, HK_DB_META, "seq:webhook", 11, seq, 8);
    /* Statistics: calls 4, errors 1, consecutive 1, last error at 1700000000000, text. */
    uint8_t st0[28 + 5];
    hk_be64(st0, 4);
    hk_be64(st0 + 8, 1);
    hk_be32(st0 + 16, 1);
    hk_be64(st0 + 20, 1700000000000ull);
    memcpy(st0 + 28, "boom!", 5);
    raw_put(s, HK_DB_STATS, k1, 4, st0, sizeof(st0));
    /* An attempt record (webhook 1, log id 7) and its time entry. */
    const char *rec0 =
        "{\"id\":7,\"webhookId\":1,\"eventId\":3,\"event\":\"old.e\",\"eventUuid\":\"u-3\",\"attempt\":2,"
        "\"time\":1700000000500,\"durationMs\":12,\"url\":\"https://r.example.com/x\","
        "\"request\":\"POST /x\",\"response\":\"HTTP/1.1 500 x\",\"result\":\"500\",\"success\":false,"
        "\"error\":\"HTTP/1.1 500 x\",\"userId\":2,\"exhausted\":true}";
    uint8_t lk[12], tk[20];
    hk_be32(lk, 1);
    hk_be64(lk + 4, 7);
    hk_be64(tk, 1700000000500ull);
    memcpy(tk + 8, lk, 12);
    raw_put(s, HK_DB_LOG, lk, 12, rec0, strlen(rec0));
    raw_put(s, HK_DB_LOG_TIME, tk, 20, "", 0);

    hk_webhook w;
    CHECK_INT(hk_store_webhook_get(s, 1, &w), 0);
    check_legacy_webhook(&w);
    hk_webhook_free(&w);
    hk_webhook_stats st;
    CHECK_INT(hk_store_webhook_stats(s, 1, &st), 0);
    CHECK(st.calls == 4 && st.errors == 1 && st.consecutive == 1 && st.last_error_ms == 1700000000000ull);
    CHECK_STR(st.last_error, "boom!");
    hk_attempt a;
    CHECK_INT(hk_store_attempt_get(s, 1, 7, &a), 0);
    CHECK(a.id == 7 && a.webhook_id == 1 && a.event_id == 3 && a.attempt == 2 && a.status == 500);
    CHECK(!a.success && a.exhausted && !a.sync && a.user_id == 2 && a.started_ms == 1700000000500ull);
    CHECK_STR(a.event_name, "old.e");
    CHECK_STR(a.request, "POST /x");
    CHECK_INT(a.response_len, 14);
    hk_attempt_free(&a);

    /* Fan-out reads the old record's state (a full decode until it is rewritten); a record
     * that cannot be read at all gets nothing and keeps nobody else from theirs. */
    uint8_t k9[4] = {0, 0, 0, 9};
    raw_put(s, HK_DB_WEBHOOKS, k9, 4, "\x07garbage", 8);
    raw_put(s, HK_DB_SUBSCRIPTIONS, "old.e", 5, k9, 4);
    hk_op op;
    CHECK_INT(fx_signal(s, "old.e", 2000, NULL, 1, &op), 0);
    CHECK_INT(op.u.signal.nwebhooks, 1);
    CHECK_INT(op.u.signal.webhooks[0], 1);
    hk_op_free_out(&op);
    CHECK_INT(hk_store_webhook_get(s, 9, &w), HK_ESTORE);
    struct raw gone = {HK_DB_WEBHOOKS, k9, 4, NULL, 0};
    CHECK_INT(hk_kv_write_sync(hk__store_kv(s), del_raw, &gone), 0);

    /* A change writes version 1, and nothing is lost on the way. */
    hk_op lock = {.type = HK_OP_WEBHOOK_LOCK, .now_ms = 1, .u.webhook_lock = {1, false}};
    CHECK_INT(hk_store_apply(s, &lock), 0);
    CHECK_INT(first_byte(s, HK_DB_WEBHOOKS, k1, 4), 1);
    CHECK_INT(hk_store_webhook_get(s, 1, &w), 0);
    check_legacy_webhook(&w);
    hk_webhook_free(&w);
    /* A success rewrites the statistics in version 1 and keeps the totals. */
    hk_attempt ok = {.webhook_id = 1, .attempt = 1, .success = true, .status = 200, .sync = true};
    hk_op at = {.type = HK_OP_ATTEMPT, .now_ms = 3000, .u.attempt = {.rec = &ok, .disable_after = 10}};
    CHECK_INT(hk_store_apply(s, &at), 0);
    CHECK_INT(first_byte(s, HK_DB_STATS, k1, 4), 1);
    CHECK_INT(hk_store_webhook_stats(s, 1, &st), 0);
    CHECK(st.calls == 5 && st.errors == 1 && st.consecutive == 0);
    CHECK_STR(st.last_error, "boom!");
    /* A new webhook continues the old id sequence. */
    hk_webhook n;
    fx_webhook(&n, "new", NULL);
    CHECK_INT(fx_create(s, &n), 2);
    hk_webhook_free(&n);

    /* Deleting the webhook takes the old record's time entry too (it is found by the record's time). */
    hk_op del = {.type = HK_OP_WEBHOOK_DELETE, .now_ms = 4000, .u.webhook_delete = {.id = 1}};
    CHECK_INT(hk_store_apply(s, &del), 0);
    CHECK_INT(first_byte(s, HK_DB_LOG, lk, 12), -1);
    CHECK_INT(first_byte(s, HK_DB_LOG_TIME, tk, 20), -1);
    CHECK_INT(first_byte(s, HK_DB_EXTENSIONS, "legacy-ext", 10), -1);

    /* Opening a store rewrites its old webhook records once, so fan-out never decodes them. */
    raw_put(s, HK_DB_WEBHOOKS, k1, 4, old_webhook, strlen(old_webhook));
    CHECK_INT(first_byte(s, HK_DB_WEBHOOKS, k1, 4), '{');
    hk_store_close(s);
    s = fx_open(NULL);
    CHECK_INT(first_byte(s, HK_DB_WEBHOOKS, k1, 4), 1);
    CHECK_INT(hk_store_webhook_get(s, 1, &w), 0);
    check_legacy_webhook(&w);
    hk_webhook_free(&w);
    hk_store_close(s);
    fx_rmdir();
}

static uint32_t want_all(uint32_t wid, void *arg)
{
    HK_UNUSED(wid);
    HK_UNUSED(arg);
    return 100;
}

static bool count_due(const hk_delivery *d, const hk_event *ev, void *arg)
{
    HK_UNUSED(d);
    CHECK_STR(ev->name, "q.e");
    (*(int *)arg)++;
    return true;
}

static void test_events_queue_and_idempotency(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    hk_webhook w;
    fx_webhook(&w, "w", "q.e", NULL);
    uint32_t wid = fx_create(s, &w);
    hk_webhook_free(&w);
    /* Event 5 in the old layout: time, primary key, user, uuid, name length, changes length, data length. */
    const char *name = "q.e", *changes = "[\"a\"]", *data = "{\"a\":1}";
    size_t len = 46 + 3 + 5 + 7;
    uint8_t ev0[46 + 3 + 5 + 7];
    hk_be64(ev0, 1000);
    hk_be64(ev0 + 8, (uint64_t)-9);
    hk_be32(ev0 + 16, 4);
    memset(ev0 + 20, 0x11, 16);
    ev0[36] = 0;
    ev0[37] = 3;
    hk_be32(ev0 + 38, 5);
    hk_be32(ev0 + 42, 7);
    memcpy(ev0 + 46, name, 3);
    memcpy(ev0 + 49, changes, 5);
    memcpy(ev0 + 54, data, 7);
    uint8_t ek[8];
    hk_be64(ek, 5);
    raw_put(s, HK_DB_EVENTS, ek, 8, ev0, len);
    uint8_t seq[8];
    hk_be64(seq, 5);
    raw_put(s, HK_DB_META, "seq:event", 9, seq, 8);
    /* Its queue entry in the old 12-byte form (attempts 1, first at 1000), due at 1500, without an index entry. */
    uint8_t qk[20], qv[12];
    hk_be32(qk, wid);
    hk_be64(qk + 4, 1500);
    hk_be64(qk + 12, 5);
    hk_be32(qv, 1);
    hk_be64(qv + 4, 1000);
    raw_put(s, HK_DB_QUEUE, qk, 20, qv, 12);
    /* An Idempotency-Key of user 4 recorded at 1000 for event 5, in the old 16-byte form. */
    uint8_t ik[4 + 3], iv[16], itk[8 + 7];
    hk_be32(ik, 4);
    memcpy(ik + 4, "key", 3);
    hk_be64(iv, 1000);
    hk_be64(iv + 8, 5);
    hk_be64(itk, 1000);
    memcpy(itk + 8, ik, 7);
    raw_put(s, HK_DB_IDEMPOTENCY, ik, 7, iv, 16);
    raw_put(s, HK_DB_IDEMPOTENCY_TIME, itk, 15, "", 0);
    /* A store from before the index: its marker is absent, so the next open builds the index. */
    struct raw marker = {HK_DB_META, "queue_events:built", 18, NULL, 0};
    CHECK_INT(hk_kv_write_sync(hk__store_kv(s), del_raw, &marker), 0);
    hk_store_close(s);
    s = fx_open(NULL);

    hk_event ev;
    CHECK_INT(hk_store_event_get(s, 5, &ev), 0);
    CHECK(ev.ts_ms == 1000 && ev.primary_key == -9 && ev.user_id == 4 && ev.uuid[15] == 0x11);
    CHECK_STR(ev.name, "q.e");
    CHECK_STR(ev.changes, "[\"a\"]");
    CHECK_STR(ev.data, "{\"a\":1}");
    hk_event_free(&ev);
    uint64_t pending, due;
    CHECK_INT(hk_store_pending(s, wid, 1500, &pending, &due), 0);
    CHECK(pending == 1 && due == 1);

    hk_op op;
    CHECK_INT(fx_signal(s, "q.e", 2000, "key", 4, &op), 0);
    CHECK(op.u.signal.duplicate && op.u.signal.event_id == 5);
    hk_op_free_out(&op);

    /* An outcome of the old entry: found, and requeued in version 1 with its attempts counted on. */
    hk_attempt rec = {.webhook_id = wid, .event_id = 5, .attempt = 2, .status = 500, .error = "x"};
    hk_op oc = {.type = HK_OP_OUTCOME, .now_ms = 1600};
    oc.u.outcome.delivery = (hk_delivery){wid, 5, 1500, 1, 1000};
    oc.u.outcome.rec = &rec;
    oc.u.outcome.next_due_ms = 2500;
    oc.u.outcome.disable_after = 10;
    CHECK_INT(hk_store_apply(s, &oc), 0);
    CHECK(!oc.u.outcome.vanished);
    hk_be64(qk + 4, 2500);
    CHECK_INT(first_byte(s, HK_DB_QUEUE, qk, 20), 1);

    /* Pruning the old event finds its entries through the index built at open. */
    hk_op p = {.type = HK_OP_PRUNE, .now_ms = 99999};
    p.u.prune.events_before_ms = 1001;
    p.u.prune.idempotency_before_ms = 1001;
    p.u.prune.max = 100;
    CHECK_INT(hk_store_apply(s, &p), 0);
    CHECK_INT(p.u.prune.dropped_deliveries, 1);
    CHECK_INT(p.u.prune.removed, 2); /* the event and the old Idempotency-Key */
    CHECK_INT(hk_store_pending(s, wid, 99999, &pending, &due), 0);
    CHECK_INT(pending, 0);

    /* A walk of the queue skips entries whose event is gone or unreadable and delivers the rest. */
    CHECK_INT(fx_signal(s, "q.e", 200000, NULL, 1, NULL), 0);
    hk_be64(qk + 4, 100);
    hk_be64(qk + 12, 77);
    raw_put(s, HK_DB_QUEUE, qk, 20, qv, 12);
    hk_be64(qk + 12, 78);
    raw_put(s, HK_DB_QUEUE, qk, 20, qv, 12);
    hk_be64(ek, 78);
    raw_put(s, HK_DB_EVENTS, ek, 8,
            "\x09"
            "bad",
            4);
    int seen = 0;
    hk_due_scan scan = {.now_ms = 300000, .webhook = want_all, .delivery = count_due, .arg = &seen};
    CHECK_INT(hk_store_scan_due(s, &scan), 0);
    CHECK_INT(seen, 1);
    CHECK(!scan.stopped);
    hk_store_close(s);
    fx_rmdir();
}

static void test_users_keys_nodes(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    uint8_t k1[4] = {0, 0, 0, 1}, k2[4] = {0, 0, 0, 2};
    const char *user0 = "{\"id\":1,\"code\":\"Admin\",\"fullName\":\"Administrator\",\"perms\":31,\"topNode\":2}";
    raw_put(s, HK_DB_USERS, k1, 4, user0, strlen(user0));
    raw_put(s, HK_DB_USER_CODES, "admin", 5, k1, 4);
    uint8_t seq[8];
    hk_be64(seq, 1);
    raw_put(s, HK_DB_META, "seq:user", 8, seq, 8);
    /* A 21-byte key record: user 1, created 77, active, short id. */
    uint8_t hash[32], key0[21];
    hk_key_hash("legacy-key", 10, hash);
    char sid[9];
    hk_key_short_id(hash, sid);
    hk_be32(key0, 1);
    hk_be64(key0 + 4, 77);
    key0[12] = 0;
    memcpy(key0 + 13, sid, 8);
    raw_put(s, HK_DB_KEYS, hash, 32, key0, 21);
    const char *node1 = "{\"parent\":0,\"name\":\"root\"}", *node2 = "{\"parent\":1,\"name\":\"child\"}";
    const char *acc0 = "{\"node\":2,\"name\":\"Acme\"}";
    raw_put(s, HK_DB_NODES, k1, 4, node1, strlen(node1));
    raw_put(s, HK_DB_NODES, k2, 4, node2, strlen(node2));
    raw_put(s, HK_DB_ACCOUNTS, k1, 4, acc0, strlen(acc0));

    hk_user u;
    CHECK_INT(hk_store_user_by_code(s, "ADMIN", &u), 0);
    CHECK(u.id == 1 && u.perms == 31 && u.top_node == 2);
    CHECK_STR(u.full_name, "Administrator");
    hk_key k;
    CHECK_INT(hk_store_key_get(s, hash, &k, &u), 0);
    CHECK(k.user_id == 1 && k.created_ms == 77 && !k.revoked && u.id == 1);
    CHECK_STR(k.short_id, sid);
    hk_header h = {.name = "ECI-ApiKey", .name_len = 10, .value = "legacy-key", .value_len = 10};
    hk_http_request r;
    memset(&r, 0, sizeof(r));
    r.headers = &h;
    r.nheaders = 1;
    CHECK_INT(hk_auth_check(s, &r, &u), HK_AUTH_OK);

    hk_node nd;
    CHECK_INT(hk_store_node_get(s, 2, &nd), 0);
    CHECK(nd.parent == 1 && strcmp(nd.name, "child") == 0);
    hk_account acc;
    CHECK_INT(hk_store_account_get(s, 1, &acc), 0);
    CHECK(acc.node == 2 && strcmp(acc.name, "Acme") == 0);
    bool in;
    CHECK_INT(hk_store_node_within(s, 2, 1, &in), 0);
    CHECK(in);

    /* Changes are written in version 1. */
    hk_op up = {.type = HK_OP_USER_PUT, .now_ms = 1};
    up.u.user_put.user = u;
    snprintf(up.u.user_put.user.full_name, sizeof(up.u.user_put.user.full_name), "Admin Two");
    CHECK_INT(hk_store_apply(s, &up), 0);
    CHECK_INT(first_byte(s, HK_DB_USERS, k1, 4), 1);
    CHECK_INT(hk_store_user_get(s, 1, &u), 0);
    CHECK(strcmp(u.full_name, "Admin Two") == 0 && strcmp(u.code, "Admin") == 0 && u.top_node == 2);
    CHECK_INT(up.u.user_put.id, 1);
    hk_op rv = {.type = HK_OP_KEY_REVOKE, .now_ms = 1};
    snprintf(rv.u.key_revoke.short_id, sizeof(rv.u.key_revoke.short_id), "%s", sid);
    CHECK_INT(hk_store_apply(s, &rv), 0);
    CHECK_INT(first_byte(s, HK_DB_KEYS, hash, 32), 1);
    CHECK_INT(hk_store_key_get(s, hash, &k, &u), 0);
    CHECK(k.revoked && k.created_ms == 77);
    CHECK_STR(k.short_id, sid);
    CHECK_INT(hk_auth_check(s, &r, &u), HK_AUTH_INVALID);
    hk_op np = {.type = HK_OP_NODE_PUT, .now_ms = 1};
    np.u.node_put.node = (hk_node){.id = 2, .parent = 1, .name = "renamed"};
    CHECK_INT(hk_store_apply(s, &np), 0);
    CHECK_INT(first_byte(s, HK_DB_NODES, k2, 4), 1);
    CHECK_INT(hk_store_node_get(s, 2, &nd), 0);
    CHECK_STR(nd.name, "renamed");
    /* A second user continues the old sequence. */
    hk_op nu = {.type = HK_OP_USER_PUT, .now_ms = 1};
    snprintf(nu.u.user_put.user.code, sizeof(nu.u.user_put.user.code), "second");
    CHECK_INT(hk_store_apply(s, &nu), 0);
    CHECK_INT(nu.u.user_put.id, 2);
    hk_store_close(s);
    fx_rmdir();
}

/* The format recorded in the store (-1 when none is, -2 on a read error). */
static long stored_format(hk_store *s)
{
    hk_txn *txn;
    hk_val v;
    long f = -1;
    if (hk_kv_read(hk__store_kv(s), &txn) != 0)
        return -2;
    if (hk_get(txn, HK_DB_META, "store:format", 12, &v) == 0 && v.len == 4)
        f = (long)hk_rd32(v.data);
    hk_txn_end(txn);
    return f;
}

/* A store records its format; one from before formats is upgraded; a newer one is refused and left alone. */
static void test_store_format(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    CHECK(stored_format(s) == HK_STORE_FORMAT);
    struct raw gone = {HK_DB_META, "store:format", 12, NULL, 0};
    CHECK_INT(hk_kv_write_sync(hk__store_kv(s), del_raw, &gone), 0);
    CHECK(stored_format(s) == -1);
    hk_store_close(s);
    s = fx_open(NULL);
    CHECK(stored_format(s) == HK_STORE_FORMAT);
    uint8_t newer[4];
    hk_be32(newer, HK_STORE_FORMAT + 1);
    raw_put(s, HK_DB_META, "store:format", 12, newer, 4);
    hk_store_close(s);
    hk_store_opts o = {.data_dir = fx_dir, .map_size = 8u << 20, .max_batch = 64};
    hk_store *t = NULL;
    CHECK_INT(hk_store_open(&t, NULL, &o), HK_EFORMAT);
    CHECK(t == NULL);
    o.exclusive = true;
    CHECK_INT(hk_store_open(&t, NULL, &o), HK_EFORMAT);
    fx_rmdir();
}

int main(void)
{
    test_webhook_stats_and_log();
    test_events_queue_and_idempotency();
    test_users_keys_nodes();
    test_store_format();
    return unit_done();
}
