/*
 * Unit tests of hk_op_encode / hk_op_decode: every op type round-trips (the
 * decoded op encodes to the same bytes and carries the same inputs), every
 * truncation and a wrong version are refused without leaks, and a decoded
 * op applied to a store gives the same state as the original applied to
 * another (ops are deterministic from their inputs).
 */
#include "state_fixture.h"

/* Encodes op, decodes it, encodes the result: both encodings must be equal. Returns the decoded op. */
static void roundtrip(const hk_op *op, hk_op *back)
{
    uint8_t *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    CHECK_INT(hk_op_encode(op, &a, &alen), 0);
    CHECK_INT(hk_op_decode(back, a, alen), 0);
    CHECK_INT(back->type, op->type);
    CHECK_INT(back->now_ms, op->now_ms);
    CHECK_INT(hk_op_encode(back, &b, &blen), 0);
    CHECK(alen == blen && memcmp(a, b, alen) == 0);
    /* Every shorter buffer is malformed. */
    for (size_t n = 0; n < alen; n++) {
        hk_op bad;
        CHECK_INT(hk_op_decode(&bad, a, n), HK_EINVAL);
    }
    a[0] = 2;
    hk_op bad;
    CHECK_INT(hk_op_decode(&bad, a, alen), HK_EINVAL);
    free(a);
    free(b);
}

static hk_attempt sample_attempt(void)
{
    hk_attempt a = {.id = 0,
                    .webhook_id = 4,
                    .event_id = 99,
                    .event_name = "contact.created",
                    .event_uuid = "00112233-4455-6677-8899-aabbccddeeff",
                    .attempt = 2,
                    .started_ms = 1700000000123ull,
                    .duration_ms = 42,
                    .success = false,
                    .status = 503,
                    .error = "HTTP/1.1 503 Busy",
                    .url = "https://r.example.com/x",
                    .request = "POST /x HTTP/1.1\r\n\r\n{\"a\":\0}",
                    .request_len = 27,
                    .response = "HTTP/1.1 503 Busy\r\n\r\n",
                    .response_len = 21,
                    .user_id = 7,
                    .exhausted = false,
                    .next_due_ms = 1700000060000ull,
                    .disabled = false,
                    .sync = false};
    return a;
}

static void test_every_type(void)
{
    hk_op op, back;

    memset(&op, 0, sizeof(op));
    op.type = HK_OP_SIGNAL;
    op.now_ms = 1234567;
    op.u.signal.name = "contact.created";
    op.u.signal.primary_key = -5;
    op.u.signal.data = "{\"a\":\"\\u0000\"}";
    op.u.signal.data_len = strlen(op.u.signal.data);
    op.u.signal.changes = "[\"a\"]";
    op.u.signal.changes_len = 5;
    op.u.signal.user_id = 3;
    memset(op.u.signal.uuid, 0xab, 16);
    op.u.signal.idem_key = "order-18";
    op.u.signal.idem_window_ms = 86400000;
    roundtrip(&op, &back);
    CHECK_STR(back.u.signal.name, "contact.created");
    CHECK_INT(back.u.signal.primary_key, -5);
    CHECK(back.u.signal.data_len == op.u.signal.data_len && memcmp(back.u.signal.data, op.u.signal.data, 14) == 0);
    CHECK_STR(back.u.signal.idem_key, "order-18");
    CHECK(memcmp(back.u.signal.uuid, op.u.signal.uuid, 16) == 0);
    hk_op_decode_free(&back);
    op.u.signal.idem_key = NULL;
    roundtrip(&op, &back);
    CHECK(back.u.signal.idem_key == NULL);
    hk_op_decode_free(&back);

    hk_attempt rec = sample_attempt();
    memset(&op, 0, sizeof(op));
    op.type = HK_OP_OUTCOME;
    op.now_ms = 99;
    op.u.outcome.delivery = (hk_delivery){4, 99, 1700000000000ull, 1, 1699999990000ull};
    op.u.outcome.rec = &rec;
    op.u.outcome.next_due_ms = 1700000060000ull;
    op.u.outcome.disable_after = 10;
    op.u.outcome.on_disable = (hk_state_event){"errors", "HTTP/1.1 503 Busy", {1, 2, 3}};
    roundtrip(&op, &back);
    CHECK_INT(back.u.outcome.delivery.first_ms, 1699999990000ull);
    CHECK_INT(back.u.outcome.rec->request_len, 27);
    CHECK(memcmp(back.u.outcome.rec->request, rec.request, 27) == 0);
    CHECK_STR(back.u.outcome.rec->error, rec.error);
    CHECK_STR(back.u.outcome.on_disable.kind, "errors");
    CHECK_INT(back.u.outcome.on_disable.uuid[2], 3);
    hk_op_decode_free(&back);

    memset(&op, 0, sizeof(op));
    op.type = HK_OP_ATTEMPT;
    rec.sync = true;
    rec.error = NULL;
    op.u.attempt.rec = &rec;
    op.u.attempt.is410 = true;
    op.u.attempt.disable_after = 3;
    roundtrip(&op, &back);
    CHECK(back.u.attempt.is410 && back.u.attempt.rec->sync && back.u.attempt.rec->error == NULL);
    CHECK(back.u.attempt.on_disable.kind == NULL);
    hk_op_decode_free(&back);

    memset(&op, 0, sizeof(op));
    op.type = HK_OP_RESEND;
    op.u.resend = (hk_op_resend){7, 1ull << 40};
    roundtrip(&op, &back);
    CHECK_INT(back.u.resend.event_id, 1ull << 40);

    hk_webhook w;
    fx_webhook(&w, "named", "a.b", "c.d", NULL);
    w.id = 12;
    w.locked = true;
    w.state = HK_WH_STOPPED;
    w.extension = hk_strdup("ext");
    w.headers = hk_calloc(1, sizeof(hk_pair));
    w.headers[0] = (hk_pair){hk_strdup("X-A"), hk_strdup("1")};
    w.nheaders = 1;
    w.properties = hk_calloc(1, sizeof(hk_pair));
    w.properties[0] = (hk_pair){hk_strdup("p"), hk_strdup("{\"x\":[1,2]}")};
    w.nproperties = 1;
    w.notify = hk_calloc(1, sizeof(char *));
    w.notify[0] = hk_strdup("a@b.c");
    w.nnotify = 1;
    memset(&op, 0, sizeof(op));
    op.type = HK_OP_WEBHOOK_PUT;
    op.u.webhook_put.webhook = &w;
    op.u.webhook_put.by_client = true;
    op.u.webhook_put.unmodified_since_ms = 5000;
    op.u.webhook_put.event = (hk_state_event){"stopped", NULL, {9}};
    roundtrip(&op, &back);
    const hk_webhook *bw = back.u.webhook_put.webhook;
    CHECK(bw->id == 12 && bw->locked && bw->state == HK_WH_STOPPED && bw->nevents == 2);
    CHECK_STR(bw->events[1], "c.d");
    CHECK_STR(bw->extension, "ext");
    CHECK_STR(bw->properties[0].value, "{\"x\":[1,2]}");
    CHECK_STR(bw->notify[0], "a@b.c");
    CHECK(back.u.webhook_put.event.reason == NULL);
    CHECK_STR(back.u.webhook_put.event.kind, "stopped");
    hk_op_decode_free(&back);
    hk_webhook_free(&w);

    memset(&op, 0, sizeof(op));
    op.type = HK_OP_WEBHOOK_DELETE;
    op.u.webhook_delete = (hk_op_webhook_delete){8, true, 77};
    roundtrip(&op, &back);
    CHECK(back.u.webhook_delete.id == 8 && back.u.webhook_delete.by_client);

    memset(&op, 0, sizeof(op));
    op.type = HK_OP_WEBHOOK_LOCK;
    op.u.webhook_lock = (hk_op_webhook_lock){8, true};
    roundtrip(&op, &back);
    CHECK(back.u.webhook_lock.locked);

    memset(&op, 0, sizeof(op));
    op.type = HK_OP_QUEUE_DROP;
    op.u.queue_drop.webhook_id = 8;
    op.u.queue_drop.max = 5000;
    roundtrip(&op, &back);
    CHECK_INT(back.u.queue_drop.max, 5000);

    memset(&op, 0, sizeof(op));
    op.type = HK_OP_USER_PUT;
    op.u.user_put.user = (hk_user){.id = 3, .code = "Ann", .full_name = "Ann Example", .perms = 5, .top_node = 9};
    roundtrip(&op, &back);
    CHECK_STR(back.u.user_put.user.full_name, "Ann Example");
    CHECK_INT(back.u.user_put.user.top_node, 9);
    CHECK(back.u.user_put.key == NULL && !back.u.user_put.only_first);
    hk_op_decode_free(&back);
    hk_key first = {.user_id = 0, .created_ms = 5, .short_id = "01020304"};
    first.hash[0] = 1;
    op.u.user_put.key = &first;
    op.u.user_put.only_first = true;
    roundtrip(&op, &back);
    CHECK(back.u.user_put.only_first && back.u.user_put.key != NULL);
    CHECK_STR(back.u.user_put.key->short_id, "01020304");
    CHECK_INT(back.u.user_put.key->hash[0], 1);
    hk_op_decode_free(&back);

    memset(&op, 0, sizeof(op));
    op.type = HK_OP_KEY_PUT;
    memset(op.u.key_put.key.hash, 0x5a, 32);
    op.u.key_put.key.user_id = 3;
    op.u.key_put.key.created_ms = 11;
    snprintf(op.u.key_put.key.short_id, 9, "5a5a5a5a");
    roundtrip(&op, &back);
    CHECK_STR(back.u.key_put.key.short_id, "5a5a5a5a");
    CHECK_INT(back.u.key_put.key.hash[31], 0x5a);

    memset(&op, 0, sizeof(op));
    op.type = HK_OP_KEY_REVOKE;
    snprintf(op.u.key_revoke.short_id, 9, "%s", "abcdef01");
    roundtrip(&op, &back);
    CHECK_STR(back.u.key_revoke.short_id, "abcdef01");

    memset(&op, 0, sizeof(op));
    op.type = HK_OP_NODE_PUT;
    op.u.node_put.node = (hk_node){.id = 2, .parent = 1, .name = "Sales"};
    roundtrip(&op, &back);
    CHECK_STR(back.u.node_put.node.name, "Sales");

    memset(&op, 0, sizeof(op));
    op.type = HK_OP_ACCOUNT_PUT;
    op.u.account_put.account = (hk_account){.id = 2, .node = 1, .name = "Acme"};
    roundtrip(&op, &back);
    CHECK_INT(back.u.account_put.account.node, 1);

    memset(&op, 0, sizeof(op));
    op.type = HK_OP_PRUNE;
    op.u.prune.attempts_before_ms = 1;
    op.u.prune.events_before_ms = 2;
    op.u.prune.idempotency_before_ms = 3;
    op.u.prune.max = 500;
    roundtrip(&op, &back);
    CHECK(back.u.prune.events_before_ms == 2 && back.u.prune.idempotency_before_ms == 3);

    memset(&op, 0, sizeof(op));
    op.type = HK_OP_TREE_IMPORT;
    op.u.tree_import.accounts = true;
    op.u.tree_import.text = "id,node,name\n1,1,x\n";
    op.u.tree_import.len = strlen(op.u.tree_import.text);
    roundtrip(&op, &back);
    CHECK(back.u.tree_import.accounts && back.u.tree_import.len == op.u.tree_import.len);
    hk_op_decode_free(&back);

    /* An unknown type cannot be encoded or decoded. */
    memset(&op, 0, sizeof(op));
    op.type = (enum hk_op_type)99;
    uint8_t *buf;
    size_t len;
    CHECK_INT(hk_op_encode(&op, &buf, &len), HK_EINVAL);
    uint8_t raw[10] = {1, 99};
    CHECK_INT(hk_op_decode(&back, raw, sizeof(raw)), HK_EINVAL);
}

/* Applies op to s directly, and its decoded copy to t: replaying the log must give the same state. */
static void apply_both(hk_store *s, hk_store *t, hk_op *op)
{
    uint8_t *buf;
    size_t len;
    hk_op copy;
    CHECK_INT(hk_op_encode(op, &buf, &len), 0);
    CHECK_INT(hk_op_decode(&copy, buf, len), 0);
    free(buf);
    int a = hk_store_apply(s, op), b = hk_store_apply(t, &copy);
    CHECK_INT(a, b);
    if (op->type == HK_OP_WEBHOOK_PUT)
        CHECK_INT(op->u.webhook_put.id, copy.u.webhook_put.id);
    if (op->type == HK_OP_OUTCOME)
        CHECK(op->u.outcome.disabled == copy.u.outcome.disabled && op->u.outcome.log_id == copy.u.outcome.log_id);
    hk_op_decode_free(&copy);
}

static void test_replay_gives_the_same_state(void)
{
    char dirs[2][64];
    hk_store *st[2];
    for (int i = 0; i < 2; i++) {
        fx_mkdir();
        memcpy(dirs[i], fx_dir, sizeof(fx_dir));
        st[i] = fx_open(NULL);
    }
    hk_webhook w;
    fx_webhook(&w, "det", "d.e", NULL);
    hk_op op = {.type = HK_OP_WEBHOOK_PUT, .now_ms = 10};
    op.u.webhook_put.webhook = &w;
    apply_both(st[0], st[1], &op);
    for (uint64_t t = 100; t < 110; t++) {
        hk_op sg = {.type = HK_OP_SIGNAL, .now_ms = t};
        sg.u.signal.name = "d.e";
        sg.u.signal.data = "{}";
        sg.u.signal.data_len = 2;
        sg.u.signal.changes = "[]";
        sg.u.signal.changes_len = 2;
        sg.u.signal.uuid[15] = (uint8_t)t;
        apply_both(st[0], st[1], &sg);
        hk_op_free_out(&sg);
    }
    hk_attempt rec = sample_attempt();
    rec.webhook_id = op.u.webhook_put.id;
    for (uint64_t t = 100; t < 103; t++) {
        hk_op oc = {.type = HK_OP_OUTCOME, .now_ms = t + 1};
        oc.u.outcome.delivery = (hk_delivery){rec.webhook_id, t - 99, t, 0, t};
        oc.u.outcome.rec = &rec;
        oc.u.outcome.disable_after = 3;
        oc.u.outcome.on_disable.kind = "errors";
        oc.u.outcome.on_disable.reason = "x";
        apply_both(st[0], st[1], &oc);
    }
    hk_webhook got[2];
    hk_webhook_stats sts[2];
    hk_event ev[2];
    for (int i = 0; i < 2; i++) {
        CHECK_INT(hk_store_webhook_get(st[i], rec.webhook_id, &got[i]), 0);
        CHECK_INT(hk_store_webhook_stats(st[i], rec.webhook_id, &sts[i]), 0);
        CHECK_INT(hk_store_event_get(st[i], 11, &ev[i]), 0); /* the state event of the disable */
    }
    CHECK(got[0].state == HK_WH_TOO_MANY_ERRORS && got[1].state == HK_WH_TOO_MANY_ERRORS);
    CHECK(memcmp(&sts[0], &sts[1], sizeof(sts[0])) == 0);
    CHECK_STR(ev[0].name, "webhook.errors");
    CHECK(ev[0].ts_ms == ev[1].ts_ms && ev[0].data_len == ev[1].data_len && strcmp(ev[0].data, ev[1].data) == 0);
    for (int i = 0; i < 2; i++) {
        hk_webhook_free(&got[i]);
        hk_event_free(&ev[i]);
        hk_store_close(st[i]);
        memcpy(fx_dir, dirs[i], sizeof(fx_dir));
        fx_rmdir();
    }
    hk_webhook_free(&w);
}

int main(void)
{
    test_every_type();
    test_replay_gives_the_same_state();
    return unit_done();
}
