/* Unit tests of the webhook store indexes through the old JSON interface (the views and rules: test_views.c,
 * test_webhook_rules.c). */
#include <stdlib.h>
#include <unistd.h>

#include "kv.h"
#include "unit.h"
#include "webhook.h"

static json_t *J(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    if (j == NULL) {
        fprintf(stderr, "bad test JSON: %s\n", text);
        abort();
    }
    return j;
}

/* A new record with every default, in the JSON form the old interface takes. */
static json_t *new_record(void)
{
    return J("{\"id\":0,\"name\":\"\",\"description\":\"\",\"events\":[],\"url\":\"\",\"secret\":\"\","
             "\"state\":\"Active\",\"type\":\"webhook\",\"headers\":{},\"properties\":{},\"notify\":[],"
             "\"locked\":false,\"extension\":null,\"registered\":0,\"registeredBy\":0,\"updated\":0,"
             "\"updatedBy\":0}");
}

/* ---- the store indexes ----------------------------------------------------- */

static int put_two(hk_txn *txn, void *arg)
{
    json_t *a = new_record(), *b = new_record();
    json_object_set_new(a, "events", J("[\"x.y\",\"z.w\"]"));
    json_object_set_new(a, "extension", json_string("Ext"));
    json_object_set_new(b, "extension", json_string("ext"));
    int rc = hk_webhook_put(txn, a);
    if (rc == 0)
        rc = hk_webhook_put(txn, b);
    *(int *)arg = (int)hk_wh_int(a, "id") * 100 + (int)hk_wh_int(b, "id");
    json_decref(a);
    json_decref(b);
    return rc;
}

static int clash(hk_txn *txn, void *arg)
{
    json_t *c = new_record();
    json_object_set_new(c, "extension", json_string("Ext"));
    int rc = hk_webhook_put(txn, c);
    json_decref(c);
    return rc;
}

static int move_ext(hk_txn *txn, void *arg)
{
    json_t *a;
    int rc = hk_webhook_get(txn, 1, &a);
    if (rc != 0)
        return rc;
    json_object_set_new(a, "extension", json_string("Other"));
    json_object_set_new(a, "events", J("[\"z.w\"]"));
    rc = hk_webhook_put(txn, a);
    json_decref(a);
    return rc;
}

static int del_one(hk_txn *txn, void *arg)
{
    return hk_webhook_delete(txn, 2);
}

static int count_subs(hk_txn *txn, const char *event)
{
    hk_cursor *c;
    hk_val k = {event, strlen(event)}, v;
    int n = 0;
    if (hk_cursor_open(txn, HK_DB_SUBSCRIPTIONS, &c) != 0)
        return -1;
    for (int rc = hk_cursor_get(c, HK_SEEK_EXACT, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (k.len != strlen(event) || memcmp(k.data, event, k.len) != 0)
            break;
        n++;
    }
    hk_cursor_close(c);
    return n;
}

static void test_store(void)
{
    char dir[] = "/tmp/hookd-unit-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    hk_kv_env *st;
    CHECK_INT(hk_kv_open(&st, dir, 8u << 20, 16, NULL), 0);
    int ids = 0;
    CHECK_INT(hk_kv_write_sync(st, put_two, &ids), 0);
    CHECK_INT(ids, 102);
    /* The extension is unique and case-sensitive. */
    CHECK_INT(hk_kv_write_sync(st, clash, NULL), HK_EEXIST);
    hk_txn *txn;
    uint32_t id = 0, tid = 0;
    CHECK_INT(hk_kv_read(st, &txn), 0);
    CHECK_INT(hk_webhook_by_extension(txn, "Ext", &id), 0);
    CHECK_INT(id, 1);
    CHECK_INT(hk_webhook_by_extension(txn, "ext", &id), 0);
    CHECK_INT(id, 2);
    CHECK_INT(count_subs(txn, "x.y"), 1);
    CHECK_INT(hk_event_type_id(txn, "x.y", &tid), 0);
    CHECK_INT(tid, 1);
    hk_txn_end(txn);

    CHECK_INT(hk_kv_write_sync(st, move_ext, NULL), 0);
    CHECK_INT(hk_kv_write_sync(st, del_one, NULL), 0);
    CHECK_INT(hk_kv_write_sync(st, del_one, NULL), HK_ENOTFOUND);
    CHECK_INT(hk_kv_read(st, &txn), 0);
    CHECK_INT(hk_webhook_by_extension(txn, "Ext", &id), HK_ENOTFOUND);
    CHECK_INT(hk_webhook_by_extension(txn, "ext", &id), HK_ENOTFOUND);
    CHECK_INT(hk_webhook_by_extension(txn, "Other", &id), 0);
    CHECK_INT(count_subs(txn, "x.y"), 0);
    CHECK_INT(count_subs(txn, "z.w"), 1);
    /* Event types stay registered with stable ids. */
    CHECK_INT(hk_event_type_id(txn, "x.y", &tid), 0);
    CHECK_INT(tid, 1);
    char *name = NULL;
    CHECK_INT(hk_event_type_name(txn, 2, &name), 0);
    CHECK_STR(name, "z.w");
    free(name);
    hk_txn_end(txn);
    hk_kv_close(st);

    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_INT(system(cmd), 0);
}

int main(void)
{
    test_store();
    return unit_done();
}
