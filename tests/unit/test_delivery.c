/* Unit tests of what a delivery looks like on the wire (delivery.h): the target, the body, the signed headers. */
#include <jansson.h>
#include <string.h>

#include "delivery.h"
#include "signature.h"
#include "unit.h"

static void pair(hk_pair **list, size_t *n, const char *name, const char *value)
{
    *list = hk_realloc(*list, (*n + 1) * sizeof(**list));
    (*list)[*n].name = hk_strdup(name);
    (*list)[*n].value = hk_strdup(value);
    (*n)++;
}

static void set(char **field, const char *value)
{
    free(*field);
    *field = hk_strdup(value);
}

static hk_webhook webhook(void)
{
    hk_webhook w;
    hk_webhook_init(&w);
    w.id = 12;
    set(&w.name, "Orders \"EU\"");
    set(&w.url, "https://h.example/hook");
    set(&w.secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    pair(&w.headers, &w.nheaders, "X-Tenant", "eu-1");
    pair(&w.headers, &w.nheaders, "Content-Type", "text/plain"); /* reserved: left out */
    pair(&w.headers, &w.nheaders, "X-Bad", "a\r\nInjected: 1");  /* unsafe value: left out */
    pair(&w.headers, &w.nheaders, "webhook-id", "forged");       /* reserved prefix: left out */
    pair(&w.properties, &w.nproperties, "region", "\"eu\"");
    pair(&w.properties, &w.nproperties, "Event", "\"clash\""); /* a key of the standard body: left out */
    pair(&w.properties, &w.nproperties, "limits", "{\"max\":3}");
    return w;
}

static hk_event event(void)
{
    hk_event ev = {.id = 5,
                   .ts_ms = 1700000000123ull,
                   .primary_key = -42,
                   .user_id = 3,
                   .name = "contact.created",
                   .changes = "[\"a\"]",
                   .changes_len = 5,
                   .data = "{\"a\":1}",
                   .data_len = 7};
    for (int i = 0; i < 16; i++)
        ev.uuid[i] = (uint8_t)(i * 17);
    return ev;
}

static void test_target_from_webhook(void)
{
    hk_webhook w = webhook();
    hk_target t;
    memset(&t, 0, sizeof(t));
    hk_target_from_webhook(&t, &w);
    CHECK_INT(t.webhook_id, 12);
    CHECK_STR(t.url, "https://h.example/hook");
    CHECK_STR(t.headers, "X-Tenant: eu-1\r\n");
    CHECK_STR(t.props, "\"region\":\"eu\",\"limits\":{\"max\":3}");
    CHECK(t.signer != NULL && t.prev_signer == NULL);
    hk_target_free(&t);
    CHECK(t.url == NULL);
    hk_target_free(&t); /* safe twice */
    hk_webhook_free(&w);
}

static void test_body(void)
{
    hk_webhook w = webhook();
    hk_target t;
    memset(&t, 0, sizeof(t));
    hk_target_from_webhook(&t, &w);
    hk_event ev = event();
    size_t len;
    char *body = hk_delivery_body(NULL, &ev, &t, &len);
    CHECK_INT(len, strlen(body));
    /* Valid JSON, every member where a receiver expects it. */
    json_error_t err;
    json_t *j = json_loadb(body, len, 0, &err);
    CHECK(j != NULL);
    if (j != NULL) {
        CHECK_STR(json_string_value(json_object_get(j, "EventId")), "00112233-4455-6677-8899-aabbccddeeff");
        CHECK_STR(json_string_value(json_object_get(j, "Event")), "contact.created");
        CHECK_STR(json_string_value(json_object_get(j, "Entity")), "contact");
        CHECK_INT(json_integer_value(json_object_get(j, "PrimaryKey")), -42);
        CHECK_INT(json_integer_value(json_object_get(j, "ChangedByAssociateId")), 3);
        CHECK_STR(json_string_value(json_object_get(j, "ContextIdentifier")), "Default");
        CHECK_STR(json_string_value(json_object_get(j, "WebhookName")), "Orders \"EU\"");
        CHECK_STR(json_string_value(json_object_get(j, "Timestamp")), "2023-11-14T22:13:20.1230000Z");
        CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "Data"), "a")), 1);
        CHECK_STR(json_string_value(json_object_get(j, "region")), "eu");
        CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "limits"), "max")), 3);
        CHECK_INT(json_object_size(j), 12);
        json_decref(j);
    }
    /* The event's part rendered once gives the same body for every webhook. */
    hk_buf head = HK_BUF_INIT;
    hk_body_head(&head, &ev);
    size_t len2;
    char *body2 = hk_delivery_body(&head, &ev, &t, &len2);
    CHECK_INT(len2, len);
    CHECK(memcmp(body, body2, len) == 0);
    /* Another webhook without Properties: the same head, its own name. */
    hk_target u;
    memset(&u, 0, sizeof(u));
    hk_webhook v;
    hk_webhook_init(&v);
    set(&v.name, "n");
    hk_target_from_webhook(&u, &v);
    size_t len3;
    char *body3 = hk_delivery_body(&head, &ev, &u, &len3);
    CHECK(len3 > head.len && memcmp(body3, head.data, head.len) == 0);
    CHECK_STR(body3 + head.len, "\"n\",\"Data\":{\"a\":1}}");
    free(body);
    free(body2);
    free(body3);
    hk_buf_free(&head);
    hk_target_free(&t);
    hk_target_free(&u);
    hk_webhook_free(&w);
    hk_webhook_free(&v);
}

static void test_headers(void)
{
    hk_webhook w = webhook();
    set(&w.prev_secret, "old-secret");
    w.prev_secret_until = 1700000000500ull;
    hk_target t;
    memset(&t, 0, sizeof(t));
    hk_target_from_webhook(&t, &w);
    const char *body = "{\"x\":1}";
    char out[HK_DELIVERY_HEADERS_MAX];
    hk_delivery_headers(&t, "contact.created", "00112233-4455-6677-8899-aabbccddeeff", 2, body, strlen(body),
                        1700000000000ull, "X-Hook-Test: true\r\n", out, sizeof(out));
    CHECK(strstr(out, "Content-Type: application/json; charset=utf-8\r\n") == out);
    CHECK(strstr(out, "X-SuperOffice-Event: contact.created\r\n") != NULL);
    CHECK(strstr(out, "X-SuperOffice-Retry: 2\r\n") != NULL);
    CHECK(strstr(out, "webhook-id: msg_00112233445566778899aabbccddeeff_12\r\n") != NULL);
    CHECK(strstr(out, "webhook-timestamp: 1700000000\r\n") != NULL);
    char so[HK_SIG_B64_LEN], line[256];
    hk_sig_superoffice(w.secret, body, strlen(body), so);
    snprintf(line, sizeof(line), "X-SuperOffice-Signature: %s\r\n", so);
    CHECK(strstr(out, line) != NULL);
    /* Within the overlap, the previous secret signs too: two signatures. */
    char sig[96], prev[96];
    CHECK_INT(hk_sig_standard(w.secret, "msg_00112233445566778899aabbccddeeff_12", 1700000000, body, strlen(body), sig,
                              sizeof(sig)),
              0);
    CHECK_INT(hk_sig_standard("old-secret", "msg_00112233445566778899aabbccddeeff_12", 1700000000, body, strlen(body),
                              prev, sizeof(prev)),
              0);
    snprintf(line, sizeof(line), "webhook-signature: %s %s\r\n", sig, prev);
    CHECK(strstr(out, line) != NULL);
    /* Custom headers, then the extra lines last. */
    const char *custom = strstr(out, "X-Tenant: eu-1\r\n");
    CHECK(custom != NULL && strstr(custom, "X-Hook-Test: true\r\n") != NULL);
    /* After the overlap: one signature. */
    hk_delivery_headers(&t, "contact.created", "00112233-4455-6677-8899-aabbccddeeff", 0, body, strlen(body),
                        1700000001000ull, NULL, out, sizeof(out));
    CHECK(strstr(out, prev) == NULL);
    hk_target_free(&t);
    /* Without a secret: no signature headers at all. */
    set(&w.secret, "");
    hk_target_from_webhook(&t, &w);
    hk_delivery_headers(&t, "a.b", "u", 0, body, strlen(body), 1700000000000ull, NULL, out, sizeof(out));
    CHECK(strstr(out, "Signature") == NULL && strstr(out, "webhook-") == NULL);
    hk_target_free(&t);
    hk_webhook_free(&w);
}

int main(void)
{
    test_target_from_webhook();
    test_body();
    test_headers();
    return unit_done();
}
