/* Unit tests of the webhook table's indexes: subscriptions, extensions, event types (the views and rules:
 * test_views.c, test_webhook_rules.c). */
#include <stdlib.h>
#include <unistd.h>

#include "state_fixture.h"
#include "tables.h"
#include "unit.h"

/* Stores w as an operator does; returns the op's status, w->id set on success. */
static int put(hk_store *s, hk_webhook *w)
{
    hk_op op = {.type = HK_OP_WEBHOOK_PUT, .now_ms = 1000};
    op.u.webhook_put.webhook = w;
    int rc = hk_store_apply(s, &op);
    if (rc == 0)
        w->id = op.u.webhook_put.id;
    return rc;
}

static void set_extension(hk_webhook *w, const char *ext)
{
    free(w->extension);
    w->extension = hk_strdup(ext);
}

static int del(hk_store *s, uint32_t id)
{
    hk_op op = {.type = HK_OP_WEBHOOK_DELETE, .now_ms = 1000, .u.webhook_delete = {.id = id}};
    return hk_store_apply(s, &op);
}

/* Subscription index entries of event, read from the table itself. */
static int count_subs(hk_store *s, const char *event)
{
    hk_txn *txn;
    hk_cursor *c;
    hk_val k = {event, strlen(event)}, v;
    int n = 0;
    if (hk_kv_read(hk__store_kv(s), &txn) != 0)
        return -1;
    if (hk_cursor_open(txn, HK_DB_SUBSCRIPTIONS, &c) != 0) {
        hk_txn_end(txn);
        return -1;
    }
    for (int rc = hk_cursor_get(c, HK_SEEK_EXACT, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (k.len != strlen(event) || memcmp(k.data, event, k.len) != 0)
            break;
        n++;
    }
    hk_cursor_close(c);
    hk_txn_end(txn);
    return n;
}

struct type_name {
    uint32_t id;
    char *name;
};

static int find_type(uint32_t id, const char *name, void *arg)
{
    struct type_name *t = arg;
    if (id == t->id)
        t->name = hk_strdup(name);
    return 0;
}

static void test_store(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    hk_webhook a, b, c;
    fx_webhook(&a, "a", "x.y", "z.w", NULL);
    set_extension(&a, "Ext");
    fx_webhook(&b, "b", NULL);
    set_extension(&b, "ext");
    CHECK_INT(put(s, &a), 0);
    CHECK_INT(put(s, &b), 0);
    CHECK_INT((int)a.id * 100 + (int)b.id, 102);
    /* The extension is unique and case-sensitive. */
    fx_webhook(&c, "c", NULL);
    set_extension(&c, "Ext");
    CHECK_INT(put(s, &c), HK_EEXIST);
    uint32_t id = 0, tid = 0;
    CHECK_INT(hk_store_webhook_by_extension(s, "Ext", &id), 0);
    CHECK_INT(id, 1);
    CHECK_INT(hk_store_webhook_by_extension(s, "ext", &id), 0);
    CHECK_INT(id, 2);
    CHECK_INT(count_subs(s, "x.y"), 1);
    CHECK_INT(hk_store_event_type_id(s, "x.y", &tid), 0);
    CHECK_INT(tid, 1);

    /* Webhook 1 moves to another extension and drops an event; webhook 2 goes. */
    hk_webhook m;
    CHECK_INT(hk_store_webhook_get(s, 1, &m), 0);
    set_extension(&m, "Other");
    for (size_t i = 0; i < m.nevents; i++)
        free(m.events[i]);
    m.events[0] = hk_strdup("z.w");
    m.nevents = 1;
    CHECK_INT(put(s, &m), 0);
    CHECK_INT(del(s, 2), 0);
    CHECK_INT(del(s, 2), HK_ENOTFOUND);
    CHECK_INT(hk_store_webhook_by_extension(s, "Ext", &id), HK_ENOTFOUND);
    CHECK_INT(hk_store_webhook_by_extension(s, "ext", &id), HK_ENOTFOUND);
    CHECK_INT(hk_store_webhook_by_extension(s, "Other", &id), 0);
    CHECK_INT(count_subs(s, "x.y"), 0);
    CHECK_INT(count_subs(s, "z.w"), 1);
    /* Event types stay registered with stable ids. */
    CHECK_INT(hk_store_event_type_id(s, "x.y", &tid), 0);
    CHECK_INT(tid, 1);
    struct type_name t = {2, NULL};
    CHECK_INT(hk_store_event_types_each(s, find_type, &t), 0);
    CHECK_STR(t.name, "z.w");
    free(t.name);

    hk_webhook_free(&a);
    hk_webhook_free(&b);
    hk_webhook_free(&c);
    hk_webhook_free(&m);
    hk_store_close(s);
    fx_rmdir();
}

int main(void)
{
    test_store();
    return unit_done();
}
