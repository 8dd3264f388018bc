/*
 * Unit tests of the registry-side ops and their queries on a real store:
 * users (codes unique case-insensitively), keys (put, lookup, revoke by
 * short id or hash, authentication through the store), nodes and accounts
 * (parent chains, the subtree question, CSV import), and webhooks (create,
 * replace, extension and subscription indexes, the operator lock, If-
 * Unmodified-Since, delete, and the state events of a client's change in
 * the same commit).
 */
#include "auth.h"
#include "state_fixture.h"

static int user_put(hk_store *s, uint32_t id, const char *code, const char *name, uint32_t *out)
{
    hk_op op = {.type = HK_OP_USER_PUT, .now_ms = 1};
    op.u.user_put.user.id = id;
    snprintf(op.u.user_put.user.code, sizeof(op.u.user_put.user.code), "%s", code);
    snprintf(op.u.user_put.user.full_name, sizeof(op.u.user_put.user.full_name), "%s", name);
    op.u.user_put.user.perms = HK_PERM_VIEW;
    int rc = hk_store_apply(s, &op);
    if (out != NULL)
        *out = op.u.user_put.id;
    return rc;
}

static int count_user(const hk_user *u, void *arg)
{
    HK_UNUSED(u);
    (*(int *)arg)++;
    return 0;
}

static int count_key(const hk_key *k, void *arg)
{
    HK_UNUSED(k);
    (*(int *)arg)++;
    return 0;
}

static enum hk_auth_result auth_header(hk_store *s, const char *name, const char *value, hk_user *out)
{
    hk_header h = {.name = name, .name_len = strlen(name), .value = value, .value_len = strlen(value)};
    hk_http_request r;
    memset(&r, 0, sizeof(r));
    r.headers = &h;
    r.nheaders = 1;
    r.path = "/";
    r.path_len = 1;
    r.query = "";
    r.body = "";
    return hk_auth_check(s, &r, out);
}

/* The first admin: a user and its key in one commit, only on a store without users. */
static void test_first_admin(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    char text[HK_KEY_TEXT_LEN];
    hk_key key;
    hk_key_make(&key, 0, NULL, 0, text);
    hk_op op = {.type = HK_OP_USER_PUT, .now_ms = 42};
    op.u.user_put.user = (hk_user){.code = "admin", .full_name = "Administrator", .perms = HK_PERM_ALL};
    op.u.user_put.key = &key;
    op.u.user_put.only_first = true;
    CHECK_INT(hk_store_apply(s, &op), 0);
    CHECK(!op.u.user_put.skipped);
    CHECK_INT(op.u.user_put.id, 1);
    hk_user u;
    CHECK_INT(auth_header(s, "ECI-ApiKey", text, &u), HK_AUTH_OK);
    CHECK(u.id == 1 && u.perms == HK_PERM_ALL);
    hk_key got;
    CHECK_INT(hk_store_key_get(s, key.hash, &got, &u), 0);
    CHECK_INT(got.created_ms, 42);
    /* A second start finds a user: nothing is stored, not even the new key. */
    hk_key second;
    hk_key_make(&second, 0, "another", 0, NULL);
    op.u.user_put.key = &second;
    snprintf(op.u.user_put.user.code, sizeof(op.u.user_put.user.code), "admin2");
    CHECK_INT(hk_store_apply(s, &op), 0);
    CHECK(op.u.user_put.skipped);
    CHECK_INT(auth_header(s, "Authorization", "Bearer another", &u), HK_AUTH_INVALID);
    size_t n;
    CHECK_INT(hk_store_user_count(s, &n), 0);
    CHECK_INT(n, 1);
    /* A key that exists already fails the whole op: no user without its key. */
    op.u.user_put.only_first = false;
    op.u.user_put.key = &key;
    CHECK_INT(hk_store_apply(s, &op), HK_EEXIST);
    CHECK_INT(hk_store_user_by_code(s, "admin2", &u), HK_ENOTFOUND);
    hk_store_close(s);
    fx_rmdir();
}

static void test_users_and_keys(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    uint32_t ann, carl;
    CHECK_INT(user_put(s, 0, "Ann", "Ann Example", &ann), 0);
    CHECK_INT(ann, 1);
    CHECK_INT(user_put(s, 0, "aNN", "Other", NULL), HK_EEXIST);
    CHECK_INT(user_put(s, 0, "", "Nobody", NULL), HK_EINVAL);
    CHECK_INT(user_put(s, 0, "Carl", "Carl", &carl), 0);
    CHECK_INT(carl, 2);
    hk_user u;
    CHECK_INT(hk_store_user_by_code(s, "ANN", &u), 0);
    CHECK_INT(u.id, ann);
    CHECK_STR(u.full_name, "Ann Example");
    /* An update may rename, and move the code when the new one is free. */
    CHECK_INT(user_put(s, ann, "Ann", "Ann Renamed", NULL), 0);
    CHECK_INT(hk_store_user_get(s, ann, &u), 0);
    CHECK_STR(u.full_name, "Ann Renamed");
    CHECK_INT(user_put(s, ann, "bob", "Bob", NULL), 0);
    CHECK_INT(hk_store_user_by_code(s, "ann", &u), HK_ENOTFOUND);
    CHECK_INT(hk_store_user_by_code(s, "BOB", &u), 0);
    CHECK_INT(u.id, ann);
    CHECK_INT(user_put(s, carl, "Bob", "Carl", NULL), HK_EEXIST);
    CHECK_INT(user_put(s, 77, "x", "x", NULL), HK_ENOTFOUND);
    size_t n;
    CHECK_INT(hk_store_user_count(s, &n), 0);
    CHECK_INT(n, 2);
    int seen = 0;
    CHECK_INT(hk_store_users_each(s, count_user, &seen), 0);
    CHECK_INT(seen, 2);

    /* Keys: stored by hash, found with their user, revoked by short id or hash. */
    char text[HK_KEY_TEXT_LEN];
    hk_op kp = {.type = HK_OP_KEY_PUT, .now_ms = 500};
    hk_key_make(&kp.u.key_put.key, ann, NULL, 0, text);
    CHECK(strncmp(text, "hk_", 3) == 0 && strlen(text) == HK_KEY_TEXT_LEN - 1);
    CHECK_INT(hk_store_apply(s, &kp), 0);
    CHECK_INT(hk_store_apply(s, &kp), HK_EEXIST);
    hk_key k;
    uint8_t hash[32];
    hk_key_hash(text, strlen(text), hash);
    CHECK_INT(hk_store_key_get(s, hash, &k, &u), 0);
    CHECK(k.user_id == ann && u.id == ann && !k.revoked && k.created_ms == 500);
    CHECK_STR(k.short_id, kp.u.key_put.key.short_id);
    hk_op kp2 = {.type = HK_OP_KEY_PUT, .now_ms = 600};
    hk_key_make(&kp2.u.key_put.key, carl, "given-key", 600, NULL);
    CHECK_INT(hk_store_apply(s, &kp2), 0);
    hk_op kp3 = {.type = HK_OP_KEY_PUT, .now_ms = 600};
    hk_key_make(&kp3.u.key_put.key, 99, "orphan", 600, NULL);
    CHECK_INT(hk_store_apply(s, &kp3), HK_ENOTFOUND);
    seen = 0;
    CHECK_INT(hk_store_keys_each(s, 0, count_key, &seen), 0);
    CHECK_INT(seen, 2);
    seen = 0;
    CHECK_INT(hk_store_keys_each(s, carl, count_key, &seen), 0);
    CHECK_INT(seen, 1);

    CHECK_INT(auth_header(s, "ECI-ApiKey", text, &u), HK_AUTH_OK);
    CHECK_INT(u.id, ann);
    CHECK_INT(auth_header(s, "Authorization", "Bearer given-key", &u), HK_AUTH_OK);
    CHECK_INT(u.id, carl);
    CHECK_INT(auth_header(s, "Authorization", "Bearer wrong", &u), HK_AUTH_INVALID);

    hk_op rv = {.type = HK_OP_KEY_REVOKE, .now_ms = 700};
    snprintf(rv.u.key_revoke.short_id, sizeof(rv.u.key_revoke.short_id), "%s", k.short_id);
    CHECK_INT(hk_store_apply(s, &rv), 0);
    CHECK_INT(hk_store_key_get(s, hash, &k, &u), 0);
    CHECK(k.revoked);
    CHECK_INT(auth_header(s, "ECI-ApiKey", text, &u), HK_AUTH_INVALID);
    memset(&rv.u.key_revoke, 0, sizeof(rv.u.key_revoke));
    memcpy(rv.u.key_revoke.hash, kp2.u.key_put.key.hash, 32);
    CHECK_INT(hk_store_apply(s, &rv), 0);
    CHECK_INT(auth_header(s, "Authorization", "Bearer given-key", &u), HK_AUTH_INVALID);
    memset(rv.u.key_revoke.hash, 0, 32);
    CHECK_INT(hk_store_apply(s, &rv), HK_ENOTFOUND);
    snprintf(rv.u.key_revoke.short_id, sizeof(rv.u.key_revoke.short_id), "zzzzzzzz");
    CHECK_INT(hk_store_apply(s, &rv), HK_ENOTFOUND);

    hk_store_close(s);
    fx_rmdir();
}

static int node_put(hk_store *s, uint32_t id, uint32_t parent, const char *name, char *err)
{
    hk_op op = {.type = HK_OP_NODE_PUT, .now_ms = 1};
    op.u.node_put.node = (hk_node){.id = id, .parent = parent};
    snprintf(op.u.node_put.node.name, sizeof(op.u.node_put.node.name), "%s", name);
    int rc = hk_store_apply(s, &op);
    if (err != NULL)
        snprintf(err, 256, "%s", op.u.node_put.err);
    return rc;
}

static int count_node(const hk_node *nd, void *arg)
{
    HK_UNUSED(nd);
    (*(int *)arg)++;
    return 0;
}

static int count_account(const hk_account *a, void *arg)
{
    HK_UNUSED(a);
    (*(int *)arg)++;
    return 0;
}

static void test_nodes_and_accounts(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    char err[256];
    CHECK_INT(node_put(s, 1, 0, "root", err), 0);
    CHECK_INT(node_put(s, 2, 1, "sales", err), 0);
    CHECK_INT(node_put(s, 3, 2, "north", err), 0);
    CHECK_INT(node_put(s, 4, 99, "orphan", err), HK_EINVAL);
    CHECK_STR(err, "node 99 does not exist");
    CHECK_INT(node_put(s, 1, 3, "root", err), HK_EINVAL);
    CHECK(strstr(err, "own ancestor") != NULL);
    CHECK_INT(node_put(s, 0, 0, "zero", err), HK_EINVAL);
    hk_node nd;
    CHECK_INT(hk_store_node_get(s, 3, &nd), 0);
    CHECK(nd.parent == 2 && strcmp(nd.name, "north") == 0);
    CHECK_INT(hk_store_node_get(s, 4, &nd), HK_ENOTFOUND);

    hk_op ap = {.type = HK_OP_ACCOUNT_PUT, .now_ms = 1};
    ap.u.account_put.account = (hk_account){.id = 10, .node = 3, .name = "Acme"};
    CHECK_INT(hk_store_apply(s, &ap), 0);
    ap.u.account_put.account.node = 98;
    CHECK_INT(hk_store_apply(s, &ap), HK_EINVAL);
    CHECK_STR(ap.u.account_put.err, "node 98 does not exist");
    hk_account acc;
    CHECK_INT(hk_store_account_get(s, 10, &acc), 0);
    CHECK(acc.node == 3 && strcmp(acc.name, "Acme") == 0);

    bool in;
    CHECK_INT(hk_store_node_within(s, 3, 1, &in), 0);
    CHECK(in);
    CHECK_INT(hk_store_node_within(s, 3, 3, &in), 0);
    CHECK(in);
    CHECK_INT(hk_store_node_within(s, 1, 3, &in), 0);
    CHECK(!in);
    CHECK_INT(hk_store_node_within(s, 3, 0, &in), 0);
    CHECK(in); /* no topmost node: no limit */
    CHECK_INT(hk_store_node_within(s, 77, 1, &in), 0);
    CHECK(!in);

    /* CSV import: all or nothing, a parent may come later in the file. */
    hk_op im = {.type = HK_OP_TREE_IMPORT, .now_ms = 1};
    im.u.tree_import.text = "id,parent,name\n21,20,child\n20,1,\"parent, with comma\"\n";
    im.u.tree_import.len = strlen(im.u.tree_import.text);
    CHECK_INT(hk_store_apply(s, &im), 0);
    CHECK_INT(im.u.tree_import.count, 2);
    CHECK_INT(hk_store_node_get(s, 20, &nd), 0);
    CHECK_STR(nd.name, "parent, with comma");
    im.u.tree_import.text = "30,1,ok\n31,500,bad\n";
    im.u.tree_import.len = strlen(im.u.tree_import.text);
    CHECK_INT(hk_store_apply(s, &im), HK_EINVAL);
    CHECK_STR(im.u.tree_import.err, "line 2: node 500 does not exist");
    CHECK_INT(hk_store_node_get(s, 30, &nd), HK_ENOTFOUND);
    im.u.tree_import.accounts = true;
    im.u.tree_import.text = "11,20,Beta\n";
    im.u.tree_import.len = strlen(im.u.tree_import.text);
    CHECK_INT(hk_store_apply(s, &im), 0);

    int nn = 0, na = 0;
    CHECK_INT(hk_store_nodes_each(s, count_node, &nn), 0);
    CHECK_INT(hk_store_accounts_each(s, count_account, &na), 0);
    CHECK_INT(nn, 5);
    CHECK_INT(na, 2);
    hk_store_close(s);
    fx_rmdir();
}

struct listed {
    uint32_t ids[16];
    uint64_t calls[16];
    size_t n;
};

static int list_one(const hk_webhook *w, const hk_webhook_stats *st, void *arg)
{
    struct listed *l = arg;
    l->ids[l->n] = w->id;
    l->calls[l->n] = st->calls;
    return ++l->n == 16;
}

static int type_seen(uint32_t id, const char *name, void *arg)
{
    HK_UNUSED(id);
    if (strcmp(name, "w.created") == 0)
        (*(int *)arg)++;
    return 0;
}

struct ext_seen {
    int n;
    uint32_t id;
    char ext[64];
};

static int ext_one(const char *ext, uint32_t id, void *arg)
{
    struct ext_seen *e = arg;
    e->n++;
    e->id = id;
    snprintf(e->ext, sizeof(e->ext), "%s", ext);
    return 0;
}

static int put(hk_store *s, hk_webhook *w, bool by_client, uint64_t ius, const char *event)
{
    hk_op op = {.type = HK_OP_WEBHOOK_PUT, .now_ms = 9000};
    op.u.webhook_put.webhook = w;
    op.u.webhook_put.by_client = by_client;
    op.u.webhook_put.unmodified_since_ms = ius;
    op.u.webhook_put.event.kind = event;
    int rc = hk_store_apply(s, &op);
    if (rc == 0)
        w->id = op.u.webhook_put.id;
    return rc;
}

static void test_webhooks(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    hk_webhook w, o, got;
    fx_webhook(&w, "first", "w.created", "w.deleted", NULL);
    w.extension = hk_strdup("ivanti-1");
    w.updated_ms = 5000;
    CHECK_INT(put(s, &w, true, 0, NULL), 0);
    uint32_t id = w.id;
    CHECK_INT(id, 1);
    CHECK_INT(hk_store_webhook_get(s, id, &got), 0);
    CHECK_STR(got.name, "first");
    CHECK_STR(got.url, "http://127.0.0.1:9/hook");
    CHECK_INT(got.nevents, 2);
    CHECK_STR(got.extension, "ivanti-1");
    hk_webhook_free(&got);
    uint32_t found;
    CHECK_INT(hk_store_webhook_by_extension(s, "ivanti-1", &found), 0);
    CHECK_INT(found, id);
    CHECK_INT(hk_store_webhook_by_extension(s, "IVANTI-1", &found), HK_ENOTFOUND);
    struct ext_seen es = {0};
    CHECK_INT(hk_store_extensions_each(s, ext_one, &es), 0);
    CHECK(es.n == 1 && es.id == id);
    CHECK_STR(es.ext, "ivanti-1");
    int types = 0;
    CHECK_INT(hk_store_event_types_each(s, type_seen, &types), 0);
    CHECK_INT(types, 1);

    /* A second webhook cannot take the extension; a replace that does not exist is refused. */
    fx_webhook(&o, "second", "w.created", NULL);
    o.extension = hk_strdup("ivanti-1");
    CHECK_INT(put(s, &o, true, 0, NULL), HK_EEXIST);
    free(o.extension);
    o.extension = NULL;
    CHECK_INT(put(s, &o, true, 0, NULL), 0);
    uint32_t oid = o.id;
    CHECK_INT(oid, 2); /* the failed create took nothing, not even an id */
    o.id = 40;
    CHECK_INT(put(s, &o, true, 0, NULL), HK_ENOTFOUND);
    o.id = oid;

    struct listed l = {0};
    CHECK_INT(hk_store_webhooks_each(s, 0, list_one, &l), 0);
    CHECK(l.n == 2 && l.ids[0] == id && l.ids[1] == oid && l.calls[0] == 0);
    memset(&l, 0, sizeof(l));
    CHECK_INT(hk_store_webhooks_each(s, id + 1, list_one, &l), 0);
    CHECK(l.n == 1 && l.ids[0] == oid);

    /* If-Unmodified-Since compares whole seconds. */
    free(w.name);
    w.name = hk_strdup("renamed");
    CHECK_INT(put(s, &w, true, 4999, NULL), HK_ECONFLICT);
    CHECK_INT(put(s, &w, true, 5000, NULL), 0);
    /* The subscription index follows the events. */
    free(w.events[1]);
    w.events[1] = hk_strdup("w.changed");
    CHECK_INT(put(s, &w, true, 0, NULL), 0);
    hk_op sg;
    CHECK_INT(fx_signal(s, "w.deleted", 10000, NULL, 1, &sg), 0);
    CHECK_INT(sg.u.signal.nwebhooks, 0);
    hk_op_free_out(&sg);
    CHECK_INT(fx_signal(s, "w.changed", 10000, NULL, 1, &sg), 0);
    CHECK_INT(sg.u.signal.nwebhooks, 1);
    hk_op_free_out(&sg);

    /* The operator lock: clients can neither change nor delete it, nor unlock it by a put. */
    hk_op lk = {.type = HK_OP_WEBHOOK_LOCK, .now_ms = 1, .u.webhook_lock = {id, true}};
    CHECK_INT(hk_store_apply(s, &lk), 0);
    CHECK_INT(put(s, &w, true, 0, NULL), HK_ELOCKED);
    hk_op del = {.type = HK_OP_WEBHOOK_DELETE, .now_ms = 1, .u.webhook_delete = {.id = id, .by_client = true}};
    CHECK_INT(hk_store_apply(s, &del), HK_ELOCKED);
    CHECK_INT(hk_store_webhook_get(s, id, &got), 0);
    CHECK(got.locked);
    CHECK_STR(got.name, "renamed");
    hk_webhook_free(&got);
    enum hk_webhook_state state;
    bool is_locked;
    CHECK_INT(hk_store_webhook_state(s, id, &state, &is_locked), 0);
    CHECK(state == HK_WH_ACTIVE && is_locked);
    CHECK_INT(hk_store_webhook_state(s, 99, &state, &is_locked), HK_ENOTFOUND);
    lk.u.webhook_lock.locked = false;
    CHECK_INT(hk_store_apply(s, &lk), 0);
    w.locked = true; /* a client's record cannot set it either */
    CHECK_INT(put(s, &w, true, 0, NULL), 0);
    CHECK_INT(hk_store_webhook_get(s, id, &got), 0);
    CHECK(!got.locked);
    hk_webhook_free(&got);
    lk.u.webhook_lock.id = 99;
    CHECK_INT(hk_store_apply(s, &lk), HK_ENOTFOUND);

    /* A client's stop is announced to webhook{ID}.stopped in the same commit. */
    char route[32];
    snprintf(route, sizeof(route), "webhook%u.stopped", id);
    free(o.events[0]);
    o.events[0] = hk_strdup(route);
    CHECK_INT(put(s, &o, true, 0, NULL), 0);
    w.state = HK_WH_STOPPED;
    CHECK_INT(put(s, &w, true, 0, "stopped"), 0);
    uint64_t pending, due;
    CHECK_INT(hk_store_pending(s, oid, 99999, &pending, &due), 0);
    CHECK_INT(pending, 1);
    hk_event ev;
    CHECK_INT(hk_store_event_get(s, 3, &ev), 0);
    CHECK_STR(ev.name, "webhook.stopped");
    CHECK_INT(ev.primary_key, id);
    char want[96];
    snprintf(want, sizeof(want), "{\"WebhookId\":%u,\"State\":\"stopped\"}", id);
    CHECK_STR(ev.data, want);
    CHECK_STR(ev.changes, "[\"WebhookId\",\"State\"]");
    hk_event_free(&ev);
    CHECK_INT(hk_store_event_type_id(s, route, &found), 0);

    /* Delete: the record, its statistics, indexes and log go; then it is not found. */
    hk_attempt rec = {.webhook_id = id, .attempt = 1, .started_ms = 1, .sync = true};
    hk_op at = {.type = HK_OP_ATTEMPT, .now_ms = 1, .u.attempt = {.rec = &rec, .disable_after = 9}};
    CHECK_INT(hk_store_apply(s, &at), 0);
    del.u.webhook_delete.unmodified_since_ms = 1000;
    CHECK_INT(hk_store_apply(s, &del), HK_ECONFLICT);
    del.u.webhook_delete.unmodified_since_ms = 0;
    CHECK_INT(hk_store_apply(s, &del), 0);
    CHECK_INT(hk_store_apply(s, &del), HK_ENOTFOUND);
    CHECK_INT(hk_store_webhook_get(s, id, &got), HK_ENOTFOUND);
    hk_webhook_stats st;
    CHECK_INT(hk_store_webhook_stats(s, id, &st), 0);
    CHECK_INT(st.calls, 0);
    CHECK_INT(hk_store_webhook_by_extension(s, "ivanti-1", &found), HK_ENOTFOUND);
    hk_attempt a;
    CHECK_INT(hk_store_attempt_get(s, id, at.u.attempt.log_id, &a), HK_ENOTFOUND);
    CHECK_INT(fx_signal(s, "w.changed", 10000, NULL, 1, &sg), 0);
    CHECK_INT(sg.u.signal.nwebhooks, 0);
    hk_op_free_out(&sg);

    hk_webhook_free(&w);
    hk_webhook_free(&o);
    hk_store_close(s);
    fx_rmdir();
}

int main(void)
{
    test_first_admin();
    test_users_and_keys();
    test_nodes_and_accounts();
    test_webhooks();
    return unit_done();
}
