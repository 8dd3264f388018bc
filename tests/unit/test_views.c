/* Unit tests of the SuperOffice and EnergyCAP views (struct -> view -> struct
 * round trips, parsing, defaults and errors), of $select and of webhook ids. */
#include <stdlib.h>

#include "registry.h"
#include "select.h"
#include "unit.h"
#include "view_ecap.h"
#include "view_so.h"

static json_t *J(const char *text)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    if (j == NULL) {
        fprintf(stderr, "bad test JSON: %s\n", text);
        abort();
    }
    return j;
}

/* True when a equals the JSON text want. */
static bool eq(const json_t *a, const char *want)
{
    json_t *w = J(want);
    bool same = json_equal((json_t *)a, w);
    if (!same) {
        char *got = json_dumps(a, JSON_ENCODE_ANY | JSON_COMPACT);
        fprintf(stderr, "got %s\nwant %s\n", got, want);
        free(got);
    }
    json_decref(w);
    return same;
}

static void set(char **dst, const char *s)
{
    free(*dst);
    *dst = s ? hk_strdup(s) : NULL;
}

static void add_pair(hk_pair **v, size_t *n, const char *name, const char *value)
{
    *v = hk_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[*n].name = hk_strdup(name);
    (*v)[*n].value = hk_strdup(value);
    (*n)++;
}

static void add_str(char ***v, size_t *n, const char *s)
{
    *v = hk_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = hk_strdup(s);
}

/* A webhook with every field set. */
static void full(hk_webhook *w)
{
    hk_webhook_init(w);
    w->id = 42;
    set(&w->name, "Orders \xc3\xa9");
    set(&w->description, "from EnergyCAP");
    set(&w->url, "https://receiver.example.com/hooks/1?x=1");
    set(&w->secret, "whsec_YQ==");
    set(&w->prev_secret, "old");
    w->prev_secret_until = 1234;
    w->state = HK_WH_STOPPED;
    add_str(&w->events, &w->nevents, "contact.created");
    add_str(&w->events, &w->nevents, "sale.changed");
    add_pair(&w->headers, &w->nheaders, "X-Tenant", "acme");
    add_pair(&w->headers, &w->nheaders, "X-Two", "2");
    add_pair(&w->properties, &w->nproperties, "env", "\"test\"");
    add_pair(&w->properties, &w->nproperties, "n", "1");
    add_pair(&w->properties, &w->nproperties, "obj", "{\"a\":[1,2.5,null,true]}");
    add_str(&w->notify, &w->nnotify, "ops@example.com");
    add_str(&w->notify, &w->nnotify, "dev@example.org");
    w->locked = true;
    set(&w->extension, "MyHook");
    w->registered_ms = 1700000000123;
    w->registered_by = 1;
    w->updated_ms = 1700000005000;
    w->updated_by = 2;
}

static bool strv_eq(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

static bool pairs_eq(const hk_pair *a, size_t na, const hk_pair *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i].name, b[i].name) != 0 || strcmp(a[i].value, b[i].value) != 0)
            return false;
    return true;
}

static void test_so_round_trip(void)
{
    hk_webhook w, back;
    full(&w);
    hk_user reg = {.id = 1, .code = "admin", .full_name = "Administrator"};
    json_t *v = hk_view_so(&w, &reg, NULL);
    CHECK_INT(json_integer_value(json_object_get(v, "WebhookId")), 42);
    CHECK_STR(json_string_value(json_object_get(v, "State")), "Stopped");
    CHECK_STR(json_string_value(json_object_get(v, "Type")), "webhook");
    CHECK_STR(json_string_value(json_object_get(v, "ErrorsEmail")), "ops@example.com,dev@example.org");
    CHECK_STR(json_string_value(json_object_get(v, "Extension")), "MyHook");
    CHECK_STR(json_string_value(json_object_get(v, "Registered")), "2023-11-14T22:13:20.1230000Z");
    CHECK_STR(json_string_value(json_object_get(json_object_get(v, "RegisteredAssociate"), "Name")), "admin");
    CHECK(json_is_null(json_object_get(v, "UpdatedAssociate")));
    CHECK(eq(json_object_get(v, "Properties"), ("{\"env\":\"test\",\"n\":1,\"obj\":{\"a\":[1,2.5,null,true]}}")));
    CHECK(json_object_get(v, "prevSecret") == NULL && json_object_get(v, "Description") == NULL);

    /* The view parsed back gives the same fields a SuperOffice client controls...
     */
    hk_webhook_init(&back);
    back.id = 7;
    back.registered_ms = 99;
    set(&back.description, "kept");
    hk_wh_err err = {0};
    CHECK_INT(hk_view_so_parse(v, &back, &err), 0);
    CHECK_STR(back.name, w.name);
    CHECK_STR(back.url, w.url);
    CHECK_STR(back.secret, w.secret);
    CHECK_INT(back.state, w.state);
    CHECK(strv_eq(back.events, back.nevents, w.events, w.nevents));
    CHECK(pairs_eq(back.headers, back.nheaders, w.headers, w.nheaders));
    CHECK(pairs_eq(back.properties, back.nproperties, w.properties, w.nproperties));
    CHECK(strv_eq(back.notify, back.nnotify, w.notify, w.nnotify));
    CHECK_STR(back.extension, w.extension);
    /* ... and leaves the others alone. */
    CHECK_INT(back.id, 7);
    CHECK_INT(back.registered_ms, 99);
    CHECK_STR(back.description, "kept");
    CHECK(!back.locked);
    json_decref(v);

    /* And again: the view of what was parsed is the view it came from, but for
     * what the parse leaves. */
    json_t *v2 = hk_view_so(&back, &reg, NULL);
    json_t *v1 = hk_view_so(&w, &reg, NULL);
    json_object_del(v1, "WebhookId");
    json_object_del(v2, "WebhookId");
    json_object_del(v1, "Registered");
    json_object_del(v2, "Registered");
    json_object_del(v1, "Updated");
    json_object_del(v2, "Updated");
    CHECK(json_equal(v1, v2));
    json_decref(v1);
    json_decref(v2);
    hk_webhook_free(&back);
    hk_webhook_free(&w);

    /* An empty webhook: the default view. */
    hk_webhook_init(&w);
    v = hk_view_so(&w, NULL, NULL);
    CHECK(eq(v, ("{\"WebhookId\":0,\"Name\":\"\",\"Events\":[],\"TargetUrl\":\"\","
                 "\"Secret\":\"\","
                 "\"State\":\"Active\",\"Type\":\"webhook\",\"Headers\":{},"
                 "\"Properties\":{},"
                 "\"Registered\":null,\"RegisteredAssociate\":null,\"Updated\":null,"
                 "\"UpdatedAssociate\":null,\"ErrorsEmail\":\"\",\"Extension\":null}")));
    json_decref(v);
    hk_webhook_free(&w);
}

/* Parses a SuperOffice body into a fresh webhook and checks it; returns 0 or
 * the status, with the field. */
static int so(const char *body, char *field)
{
    hk_webhook w;
    hk_webhook_init(&w);
    json_t *in = J(body);
    hk_wh_err err = {0};
    int rc = hk_view_so_parse(in, &w, &err);
    if (rc == 0)
        rc = hk_webhook_check(&w, NULL, &hk_view_so_names, NULL, &err);
    if (field != NULL)
        snprintf(field, 64, "%s", err.field);
    json_decref(in);
    hk_webhook_free(&w);
    return rc == 0 ? 0 : err.status;
}

static void test_so_parse(void)
{
    char f[64];
    CHECK_INT(so("{\"TargetUrl\":\"https://a.example/x\"}", f), 0);
    /* Member names in any letter case. */
    CHECK_INT(so("{\"targeturl\":\"http://[::1]:8080/x?y#z\"}", f), 0);
    CHECK_INT(so("{\"targetUrl\":7}", f), 400);
    CHECK_STR(f, "TargetUrl");
    static const char *const bad_urls[] = {"\"\"",
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
                                           "\"http://user@host.example:1/\""};
    for (size_t i = 0; i < HK_ARRAY_SIZE(bad_urls); i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"TargetUrl\":%s}", bad_urls[i]);
        CHECK_INT(so(body, f), 400);
        CHECK_STR(f, "TargetUrl");
    }
    CHECK_INT(so("[1]", f), 400);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Type\":\"crmscript\"}", f), 400);
    CHECK_STR(f, "Type");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Type\":\"WebHook\"}", f), 0);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Type\":5}", f), 400);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"State\":2}", f), 0);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"State\":\"paused\"}", f), 400);
    CHECK_STR(f, "State");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"State\":3}", f), 400);
    CHECK_STR(f, "State");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"State\":[1]}", f), 400);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"ErrorsEmail\":\" a@b.co "
                 "; c@d.org,\"}",
                 f),
              0);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"ErrorsEmail\":\"a@b\"}", f), 400);
    CHECK_STR(f, "ErrorsEmail");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"ErrorsEmail\":[\"a@b.com\"]}", f), 400);
    CHECK_STR(f, "ErrorsEmail");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"ErrorsEmail\":\"a@-b.com\"}", f), 400);
    CHECK_INT(so("{\"TargetUrl\":\"http://"
                 "a.example\",\"Headers\":{\"webhook-signature\":\"x\"}}",
                 f),
              400);
    CHECK_STR(f, "Headers");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Headers\":{\"Bad "
                 "Name\":\"x\"}}",
                 f),
              400);
    CHECK_INT(so("{\"TargetUrl\":\"http://"
                 "a.example\",\"Headers\":{\"X-Ok\":\"a\\r\\nb\"}}",
                 f),
              400);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Headers\":{\"X-Ok\":5}}", f), 400);
    CHECK_STR(f, "Headers");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Headers\":[\"x\"]}", f), 400);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Properties\":\"x\"}", f), 400);
    CHECK_STR(f, "Properties");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Events\":[\"\"]}", f), 400);
    CHECK_STR(f, "Events");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Events\":[7]}", f), 400);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Events\":\"a.b\"}", f), 400);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Name\":[\"x\"]}", f), 400);
    CHECK_STR(f, "Name");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Secret\":42}", f), 400);
    CHECK_STR(f, "Secret");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Secret\":\"whsec_abc!\"}", f), 400);
    CHECK_STR(f, "Secret");
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Extension\":\"\"}", f), 0);
    CHECK_INT(so("{\"TargetUrl\":\"http://a.example\",\"Extension\":5}", f), 400);
    CHECK_STR(f, "Extension");

    /* Defaults, duplicates dropped, addresses split, unknown members ignored,
     * null is absent. */
    hk_webhook w;
    full(&w);
    json_t *in = J("{\"TARGETURL\":\"http://"
                   "a.example\",\"events\":[\"a.b\",\"a.b\",\"c.d\",\"a.b\"],"
                   "\"errorsEmail\":\"x@y.org;z@w.org\",\"name\":\"n\","
                   "\"Unknown\":{\"x\":1},\"Extension\":null,"
                   "\"Headers\":null}");
    hk_wh_err err = {0};
    CHECK_INT(hk_view_so_parse(in, &w, &err), 0);
    CHECK_INT(w.nevents, 2);
    CHECK_STR(w.events[1], "c.d");
    CHECK_INT(w.nnotify, 2);
    CHECK_STR(w.notify[1], "z@w.org");
    CHECK_INT(w.state, HK_WH_ACTIVE);
    CHECK(w.extension == NULL);
    CHECK_INT(w.nheaders, 0);
    CHECK_INT(w.nproperties, 0);
    CHECK_STR(w.secret, "");
    CHECK_STR(w.name, "n");
    json_decref(in);
    /* An exact match wins over another spelling. */
    in = J("{\"TargetUrl\":\"http://"
           "a.example\",\"name\":\"lower\",\"Name\":\"exact\"}");
    CHECK_INT(hk_view_so_parse(in, &w, &err), 0);
    CHECK_STR(w.name, "exact");
    json_decref(in);
    in = J("{\"TargetUrl\":\"http://a.example\",\"State\":\"stopped\"}");
    CHECK_INT(hk_view_so_parse(in, &w, &err), 0);
    CHECK_INT(w.state, HK_WH_STOPPED);
    json_decref(in);
    hk_webhook_free(&w);
}

static const char *const ec_ok = "{\"active\":true,\"mailingList\":[\"a@b.com\"],\"secret\":\"s\","
                                 "\"url\":\"https://x.example/"
                                 "\",\"webhookDescription\":\"\",\"webhookEventTypeId\":1,"
                                 "\"webhookName\":\"n\"}";

static int ecap(const char *body, char *field)
{
    hk_webhook w;
    hk_webhook_init(&w);
    json_t *in = J(body);
    hk_wh_err err = {0};
    uint32_t tid = 0;
    int rc = hk_view_ecap_parse(in, &w, &tid, &err);
    if (rc == 0)
        rc = hk_webhook_check(&w, NULL, &hk_view_ecap_names, NULL, &err);
    if (field != NULL)
        snprintf(field, 64, "%s", err.field);
    json_decref(in);
    hk_webhook_free(&w);
    return rc == 0 ? 0 : err.status;
}

static void ecap_without(const char *member, const char *replacement)
{
    json_t *in = J(ec_ok);
    if (replacement == NULL)
        json_object_del(in, member);
    else
        json_object_set_new(in, member, J(replacement));
    char *text = json_dumps(in, 0), f[64];
    CHECK_INT(ecap(text, f), 400);
    CHECK_STR(f, member);
    free(text);
    json_decref(in);
}

static void test_ecap(void)
{
    char f[64];
    CHECK_INT(ecap(ec_ok, f), 0);
    CHECK_INT(ecap("{\"active\":true}", f), 400);
    CHECK_STR(f, "mailingList");
    static const char *const required[] = {
        "active", "mailingList", "secret", "url", "webhookDescription", "webhookEventTypeId", "webhookName"};
    for (size_t i = 0; i < HK_ARRAY_SIZE(required); i++) {
        ecap_without(required[i], NULL);
        ecap_without(required[i], "null");
    }
    ecap_without("mailingList", "[]");
    ecap_without("mailingList", "[\"nobody\"]");
    ecap_without("mailingList", "[\"a@b.com\", 5]");
    ecap_without("mailingList", "\"a@b.com\"");
    ecap_without("webhookEventTypeId", "0");
    ecap_without("webhookEventTypeId", "\"1\"");
    ecap_without("active", "\"yes\"");
    ecap_without("url", "\"mailto:a@b.com\"");
    ecap_without("secret", "\"\"");
    ecap_without("secret", "\"whsec_a-b_\"");
    ecap_without("webhookDescription", "5");
    ecap_without("webhookName", "\"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\"");
    ecap_without("extension", "[\"x\"]");

    /* active false on a disabled webhook keeps TooManyErrors; the extension is
     * kept when absent. */
    hk_webhook w;
    full(&w);
    w.state = HK_WH_TOO_MANY_ERRORS;
    json_t *in = J(ec_ok);
    json_object_set_new(in, "active", json_false());
    hk_wh_err err = {0};
    uint32_t tid = 0;
    CHECK_INT(hk_view_ecap_parse(in, &w, &tid, &err), 0);
    CHECK_INT(w.state, HK_WH_TOO_MANY_ERRORS);
    CHECK_INT(tid, 1);
    CHECK_STR(w.extension, "MyHook");
    CHECK_INT(w.nevents, 2); /* the caller resolves the event type */
    CHECK_INT(w.nheaders, 2);
    w.state = HK_WH_ACTIVE;
    CHECK_INT(hk_view_ecap_parse(in, &w, &tid, &err), 0);
    CHECK_INT(w.state, HK_WH_STOPPED);
    json_object_set_new(in, "extension", json_null());
    CHECK_INT(hk_view_ecap_parse(in, &w, &tid, &err), 0);
    CHECK(w.extension == NULL);
    json_decref(in);
    hk_webhook_free(&w);
}

static void test_ecap_round_trip(void)
{
    hk_webhook w, back;
    full(&w);
    w.state = HK_WH_ACTIVE;
    hk_webhook_stats st = {.calls = 4, .errors = 1};
    hk_user by = {.id = 1, .code = "admin", .full_name = "Administrator"};
    json_t *v = hk_view_ecap(&w, &st, 9, &by);
    CHECK(eq(json_object_get(v, "eventType"), ("{\"webhookEventTypeId\":9,\"webhookEventTypeName\":\"contact."
                                               "created\"}")));
    CHECK(eq(json_object_get(v, "createdBy"), ("{\"fullName\":\"Administrator\",\"userCode\":\"admin\",\"userId\":"
                                               "1}")));
    CHECK_STR(json_string_value(json_object_get(v, "createdDate")), "2023-11-14T22:13:20.123Z");
    CHECK(json_real_value(json_object_get(v, "successRate")) == 75.0);
    CHECK(json_is_true(json_object_get(v, "active")) && json_is_true(json_object_get(v, "locked")));
    CHECK_STR(json_string_value(json_object_get(v, "webhookStatus")), "Active");

    /* A WebhookEditRequest made of the view sets the same fields back. */
    json_t *req =
        json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "webhookName", json_object_get(v, "webhookName"),
                  "webhookDescription", json_object_get(v, "webhookDescription"), "url", json_object_get(v, "url"),
                  "secret", json_object_get(v, "secret"), "active", json_object_get(v, "active"), "mailingList",
                  json_object_get(v, "mailingList"), "webhookEventTypeId",
                  json_object_get(json_object_get(v, "eventType"), "webhookEventTypeId"), "extension",
                  json_object_get(v, "extension"));
    hk_webhook_init(&back);
    hk_wh_err err = {0};
    uint32_t tid = 0;
    CHECK_INT(hk_view_ecap_parse(req, &back, &tid, &err), 0);
    CHECK_INT(tid, 9);
    CHECK_STR(back.name, w.name);
    CHECK_STR(back.description, w.description);
    CHECK_STR(back.url, w.url);
    CHECK_STR(back.secret, w.secret);
    CHECK_INT(back.state, w.state);
    CHECK(strv_eq(back.notify, back.nnotify, w.notify, w.nnotify));
    CHECK_STR(back.extension, w.extension);
    json_decref(req);
    json_decref(v);
    hk_webhook_free(&back);

    /* No events, no statistics, no creator. */
    hk_webhook_free(&w);
    hk_webhook_init(&w);
    v = hk_view_ecap(&w, NULL, 0, NULL);
    CHECK(json_is_null(json_object_get(v, "eventType")) && json_is_null(json_object_get(v, "createdBy")));
    CHECK(json_is_null(json_object_get(v, "createdDate")) && json_is_null(json_object_get(v, "extension")));
    CHECK(json_real_value(json_object_get(v, "successRate")) == 0.0);
    json_decref(v);
    hk_webhook_free(&w);
}

static void test_select(void)
{
    json_t *v = J("{\"Name\":\"n\",\"TargetUrl\":\"u\",\"State\":\"Active\","
                  "\"RegisteredAssociate\":{\"A\":1},"
                  "\"_Links\":{}}");
    hk_select_apply(v, " name , registeredassociate/A");
    CHECK_STR(json_string_value(json_object_get(v, "Name")), "n");
    CHECK(json_is_null(json_object_get(v, "TargetUrl")));
    CHECK(json_is_null(json_object_get(v, "State")));
    CHECK(json_is_object(json_object_get(v, "RegisteredAssociate")));
    CHECK(json_is_object(json_object_get(v, "_Links")));
    json_decref(v);
    v = J("{\"Name\":\"n\"}");
    hk_select_apply(v, "");
    hk_select_apply(v, NULL);
    CHECK_STR(json_string_value(json_object_get(v, "Name")), "n");
    hk_select_apply(v, "Other");
    CHECK(json_is_null(json_object_get(v, "Name")));
    json_decref(v);

    /* Webhook ids in paths and queries. */
    uint32_t id = 0;
    CHECK(hk_reg_parse_id("12", &id) && id == 12);
    CHECK(hk_reg_parse_id("2147483647", &id));
    CHECK(!hk_reg_parse_id("0", &id));
    CHECK(!hk_reg_parse_id("-1", &id));
    CHECK(!hk_reg_parse_id("2147483648", &id));
    CHECK(!hk_reg_parse_id("1x", &id));
    CHECK(!hk_reg_parse_id("", &id));
    CHECK(!hk_reg_parse_id(NULL, &id));
}

int main(void)
{
    test_so_round_trip();
    test_so_parse();
    test_ecap();
    test_ecap_round_trip();
    test_select();
    return unit_done();
}
