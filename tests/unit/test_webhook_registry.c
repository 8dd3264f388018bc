/* Unit tests of the registry's input validation and views, and of the webhook store indexes. */
#include <stdlib.h>
#include <unistd.h>

#include "registry.h"
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

/* Applies a SuperOffice body to a new record; returns the status (0 or 400) and the field at fault. */
static int so(const char *body, char *field)
{
    json_t *rec = hk_reg_new_record(), *in = J(body);
    hk_reg_err err = {0};
    int rc = hk_reg_from_so(rec, in, &err);
    if (field != NULL)
        snprintf(field, 64, "%s", err.field);
    json_decref(rec);
    json_decref(in);
    return rc == 0 ? 0 : err.status;
}

static int ecap(const char *body, char *field)
{
    json_t *rec = hk_reg_new_record(), *in = J(body);
    hk_reg_err err = {0};
    uint32_t tid = 0;
    int rc = hk_reg_from_ecap(rec, in, &tid, &err);
    if (field != NULL)
        snprintf(field, 64, "%s", err.field);
    json_decref(rec);
    json_decref(in);
    return rc == 0 ? 0 : err.status;
}

static void test_superoffice_input(void)
{
    char f[64];
    CHECK_INT(so("{\"TargetUrl\":\"https://a.example/x\"}", f), 0);
    CHECK_INT(so("{\"targeturl\":\"http://[::1]:8080/x?y#z\"}", f), 0);
    CHECK_INT(so("{\"TargetUrl\":\"http://user@host.example:1/\"}", f), 0);
    static const char *const bad_urls[] = {
        "\"\"",
        "\"example.com\"",
        "\"ftp://a.example\"",
        "\"http://\"",
        "\"http://:80\"",
        "\"http://a b\"",
        "\"http://a.example:0/\"",
        "\"http://a.example:65536/\"",
        "\"http://a.example:/\"",
        "\"http://[]/\"",
        "\"https://a\\u00e9.example/\"",
        "7",
        "null",
    };
    for (size_t i = 0; i < HK_ARRAY_SIZE(bad_urls); i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"TargetUrl\":%s}", bad_urls[i]);
        CHECK_INT(so(body, f), 400);
        CHECK_STR(f, "TargetUrl");
    }
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Type\":\"crmscript\"}", f), 400);
    CHECK_STR(f, "Type");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Type\":\"WebHook\"}", f), 0);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"State\":2}", f), 0);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"State\":\"paused\"}", f), 400);
    CHECK_STR(f, "State");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"ErrorsEmail\":\" a@b.co ; c@d.org,\"}", f), 0);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"ErrorsEmail\":\"a@b\"}", f), 400);
    CHECK_STR(f, "ErrorsEmail");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"ErrorsEmail\":\"a@-b.com\"}", f), 400);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Headers\":{\"webhook-signature\":\"x\"}}", f), 400);
    CHECK_STR(f, "Headers");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Headers\":{\"Bad Name\":\"x\"}}", f), 400);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Headers\":{\"X-Ok\":\"a\\r\\nb\"}}", f), 400);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Events\":[\"\"]}", f), 400);
    CHECK_STR(f, "Events");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Extension\":\"\"}", f), 0);

    /* Defaults, duplicates dropped, addresses split. */
    json_t *rec = hk_reg_new_record();
    json_t *in = J("{\"TargetUrl\":\"http://a.example\",\"Events\":[\"a.b\",\"a.b\",\"c.d\"],"
                   "\"ErrorsEmail\":\"x@y.org;z@w.org\",\"Name\":\"n\"}");
    hk_reg_err err = {0};
    CHECK_INT(hk_reg_from_so(rec, in, &err), 0);
    CHECK_INT(json_array_size(json_object_get(rec, "events")), 2);
    CHECK_INT(json_array_size(json_object_get(rec, "notify")), 2);
    CHECK_STR(hk_wh_str(rec, "state"), HK_STATE_ACTIVE);
    CHECK_STR(hk_wh_str(rec, "type"), "webhook");
    CHECK(json_is_null(json_object_get(rec, "extension")));
    json_decref(in);
    json_decref(rec);
}

static void test_energycap_input(void)
{
    char f[64];
    const char *ok = "{\"active\":true,\"mailingList\":[\"a@b.com\"],\"secret\":\"s\",\"url\":\"https://x.example/\","
                     "\"webhookDescription\":\"\",\"webhookEventTypeId\":1,\"webhookName\":\"n\"}";
    CHECK_INT(ecap(ok, f), 0);
    CHECK_INT(ecap("{\"active\":true}", f), 400);
    CHECK_STR(f, "mailingList");
    CHECK_INT(ecap("{\"active\":true,\"mailingList\":[],\"secret\":\"s\",\"url\":\"https://x.example/\","
                   "\"webhookDescription\":\"\",\"webhookEventTypeId\":1,\"webhookName\":\"n\"}",
                   f),
              400);
    CHECK_STR(f, "mailingList");
    CHECK_INT(ecap("{\"active\":true,\"mailingList\":[\"a@b.com\"],\"secret\":\"s\",\"url\":\"https://x.example/\","
                   "\"webhookDescription\":\"\",\"webhookEventTypeId\":0,\"webhookName\":\"n\"}",
                   f),
              400);
    CHECK_STR(f, "webhookEventTypeId");

    /* active false on a disabled webhook keeps TooManyErrors. */
    json_t *rec = hk_reg_new_record(), *in = J(ok);
    json_object_set_new(in, "active", json_false());
    json_object_set_new(rec, "state", json_string(HK_STATE_TOO_MANY_ERRORS));
    hk_reg_err err = {0};
    uint32_t tid = 0;
    CHECK_INT(hk_reg_from_ecap(rec, in, &tid, &err), 0);
    CHECK_STR(hk_wh_str(rec, "state"), HK_STATE_TOO_MANY_ERRORS);
    CHECK_INT(tid, 1);
    json_object_set_new(rec, "state", json_string(HK_STATE_ACTIVE));
    CHECK_INT(hk_reg_from_ecap(rec, in, &tid, &err), 0);
    CHECK_STR(hk_wh_str(rec, "state"), HK_STATE_STOPPED);
    json_decref(in);
    json_decref(rec);
}

static void test_select(void)
{
    json_t *v = J("{\"Name\":\"n\",\"TargetUrl\":\"u\",\"State\":\"Active\",\"RegisteredAssociate\":{\"A\":1},"
                  "\"_Links\":{}}");
    hk_reg_select(v, " name , registeredassociate/A");
    CHECK_STR(json_string_value(json_object_get(v, "Name")), "n");
    CHECK(json_is_null(json_object_get(v, "TargetUrl")));
    CHECK(json_is_null(json_object_get(v, "State")));
    CHECK(json_is_object(json_object_get(v, "RegisteredAssociate")));
    CHECK(json_is_object(json_object_get(v, "_Links")));
    json_decref(v);
    CHECK(hk_reg_parse_id("12", &(uint32_t){0}));
    CHECK(!hk_reg_parse_id("0", &(uint32_t){0}));
    CHECK(!hk_reg_parse_id("-1", &(uint32_t){0}));
    CHECK(!hk_reg_parse_id("2147483648", &(uint32_t){0}));
    CHECK(!hk_reg_parse_id("1x", &(uint32_t){0}));
}

/* ---- the store indexes ----------------------------------------------------- */

static int put_two(hk_txn *txn, void *arg)
{
    json_t *a = hk_reg_new_record(), *b = hk_reg_new_record();
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
    json_t *c = hk_reg_new_record();
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
    test_superoffice_input();
    test_energycap_input();
    test_select();
    test_store();
    return unit_done();
}
