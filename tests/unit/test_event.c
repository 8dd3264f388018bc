/* Unit tests of event records, delivery bodies, headers and the retry schedule. */
#include <jansson.h>

#include "delivery.h"
#include "engine.h"
#include "outcome.h"
#include "signature.h"
#include "tables.h"
#include "unit.h"

static void test_record_roundtrip(void)
{
    static const char data[] = "{\"a\":\"\\u00e9\"}";
    uint8_t uuid_bytes[16];
    for (int i = 0; i < 16; i++)
        uuid_bytes[i] = (uint8_t)(i * 17);
    hk__wbuf b = {0};
    hk__event_encode(&b, 1795435448593ull, -42, 3, uuid_bytes, "contact.created", 15, "[\"a\"]", 5, data, 14);
    hk_event d;
    CHECK_INT(hk__event_decode(b.p, b.len, 7, &d), 0);
    CHECK_INT(d.id, 7);
    CHECK_INT(d.ts_ms, 1795435448593ull);
    CHECK_INT(d.primary_key, -42);
    CHECK_INT(d.user_id, 3);
    CHECK(strlen(d.name) == 15 && memcmp(d.name, "contact.created", 15) == 0);
    CHECK(d.data_len == 14 && memcmp(d.data, data, 14) == 0);
    CHECK(memcmp(d.uuid, uuid_bytes, 16) == 0);
    hk_event bad;
    CHECK_INT(hk__event_decode(b.p, b.len - 1, 7, &bad), HK_ESTORE);
    hk_event_free(&bad);
    free(b.p);

    char uuid[HK_EVENT_UUID_LEN];
    hk_event_uuid_str(d.uuid, uuid);
    CHECK_STR(uuid, "00112233-4455-6677-8899-aabbccddeeff");

    /* The body a webhook named My "hook" with the Property tenant: "acme" gets. */
    hk_webhook w;
    hk_webhook_init(&w);
    free(w.name);
    w.name = hk_strdup("My \"hook\"");
    w.properties = hk_calloc(1, sizeof(*w.properties));
    w.properties[0].name = hk_strdup("tenant");
    w.properties[0].value = hk_strdup("\"acme\"");
    w.nproperties = 1;
    hk_target t = {0};
    hk_target_from_webhook(&t, &w);
    size_t blen;
    char *body = hk_delivery_body(NULL, &d, &t, &blen);
    CHECK_INT(strlen(body), blen);
    json_error_t err;
    json_t *j = json_loads(body, 0, &err);
    CHECK(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "EventId")), uuid);
    CHECK_STR(json_string_value(json_object_get(j, "Event")), "contact.created");
    CHECK_STR(json_string_value(json_object_get(j, "Entity")), "contact");
    CHECK_STR(json_string_value(json_object_get(j, "WebhookName")), "My \"hook\"");
    CHECK_STR(json_string_value(json_object_get(j, "Timestamp")), "2026-11-23T12:04:08.5930000Z");
    CHECK_INT(json_integer_value(json_object_get(j, "PrimaryKey")), -42);
    CHECK_INT(json_integer_value(json_object_get(j, "ChangedByAssociateId")), 3);
    CHECK_STR(json_string_value(json_object_get(j, "tenant")), "acme");
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "Data"), "a")), "\xc3\xa9");
    json_decref(j);
    free(body);
    hk_target_free(&t);
    hk_webhook_free(&w);
    hk_event_free(&d);
}

/* Appends a name/value pair to *v (n entries). */
static void add_pair(hk_pair **v, size_t *n, const char *name, const char *value)
{
    *v = hk_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[*n].name = hk_strdup(name);
    (*v)[(*n)++].value = hk_strdup(value);
}

static void set_str(char **field, const char *value)
{
    free(*field);
    *field = hk_strdup(value);
}

static void test_target_and_headers(void)
{
    hk_webhook w;
    hk_webhook_init(&w);
    w.id = 9;
    set_str(&w.url, "https://h/x");
    set_str(&w.name, "n");
    set_str(&w.secret, "new");
    set_str(&w.prev_secret, "old");
    w.prev_secret_until = 99999999999999ull;
    add_pair(&w.headers, &w.nheaders, "X-Ok", "1");
    add_pair(&w.headers, &w.nheaders, "Content-Type", "text/plain");
    add_pair(&w.headers, &w.nheaders, "webhook-id", "x");
    add_pair(&w.headers, &w.nheaders, "X-Bad", "a\r\nInjected: 1");
    add_pair(&w.headers, &w.nheaders, "Bad Name", "v");
    add_pair(&w.properties, &w.nproperties, "p", "[1,2]");
    add_pair(&w.properties, &w.nproperties, "Event", "\"clash\"");
    hk_target t = {0};
    hk_target_from_webhook(&t, &w);
    CHECK_INT(t.webhook_id, 9);
    CHECK_STR(t.headers, "X-Ok: 1\r\n");
    CHECK_STR(t.props, "\"p\":[1,2]");
    char out[HK_DELIVERY_HEADERS_MAX];
    const char *body = "{}";
    hk_delivery_headers(&t, "a.b", "00112233-4455-6677-8899-aabbccddeeff", 2, body, 2, 1700000000000ull,
                        "X-Hook-Test: true\r\n", out, sizeof(out));
    CHECK(strstr(out, "X-SuperOffice-Retry: 2\r\n") != NULL);
    CHECK(strstr(out, "webhook-id: msg_00112233445566778899aabbccddeeff_9\r\n") != NULL);
    CHECK(strstr(out, "webhook-timestamp: 1700000000\r\n") != NULL);
    char s1[64], s2[64], line[200];
    CHECK_INT(hk_sig_standard("new", "msg_00112233445566778899aabbccddeeff_9", 1700000000, body, 2, s1, sizeof(s1)), 0);
    CHECK_INT(hk_sig_standard("old", "msg_00112233445566778899aabbccddeeff_9", 1700000000, body, 2, s2, sizeof(s2)), 0);
    snprintf(line, sizeof(line), "webhook-signature: %s %s\r\n", s1, s2);
    CHECK(strstr(out, line) != NULL);
    CHECK(strstr(out, "Injected") == NULL);
    CHECK(strstr(out, "X-Hook-Test: true\r\n") != NULL);
    hk_target_free(&t);

    /* After the overlap only the new secret signs; without a secret nothing does. */
    w.prev_secret_until = 1;
    hk_target_from_webhook(&t, &w);
    hk_delivery_headers(&t, "a.b", "00112233-4455-6677-8899-aabbccddeeff", 0, body, 2, 1700000000000ull, NULL, out,
                        sizeof(out));
    snprintf(line, sizeof(line), "webhook-signature: %s\r\n", s1);
    CHECK(strstr(out, line) != NULL);
    hk_target_free(&t);
    set_str(&w.secret, "");
    hk_target_from_webhook(&t, &w);
    hk_delivery_headers(&t, "a.b", "u", 0, body, 2, 1700000000000ull, NULL, out, sizeof(out));
    CHECK(strstr(out, "signature") == NULL && strstr(out, "webhook-id") == NULL);
    hk_target_free(&t);
    hk_webhook_free(&w);
}

static void test_retry_schedule(void)
{
    uint64_t *d;
    size_t n;
    CHECK_INT(hk_retry_schedule_parse("0s,5s,5m,30m,2h,5h,10h,10h", &d, &n), 0);
    CHECK_INT(n, 8);
    CHECK_INT(d[0], 0);
    CHECK_INT(d[2], 300000);
    CHECK_INT(d[7], 36000000);
    free(d);
    CHECK_INT(hk_retry_schedule_parse("", &d, &n), HK_EINVAL);
    CHECK_INT(hk_retry_schedule_parse("5s,soon", &d, &n), HK_EINVAL);
}

int main(void)
{
    test_record_roundtrip();
    test_target_and_headers();
    test_retry_schedule();
    return unit_done();
}
