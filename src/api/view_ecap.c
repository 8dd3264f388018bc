/* view_ecap.c: the EnergyCAP view of a webhook (see view_ecap.h). */
#include "view_ecap.h"

#include <string.h>

#include "date.h"
#include "json_patch.h"
#include "view.h"

const hk_wh_names hk_view_ecap_names = {
    .name = "webhookName",
    .description = "webhookDescription",
    .url = "url",
    .secret = "secret",
    .state = "active",
    .events = "webhookEventTypeId",
    .headers = "headers",
    .properties = "properties",
    .notify = "mailingList",
    .extension = "extension",
};

json_t *hk_view_ecap(const hk_webhook *w, const hk_webhook_stats *st, uint32_t event_type_id, const hk_user *created_by)
{
    hk_webhook_stats none = {0};
    json_t *event_type = json_null();
    if (w->nevents > 0)
        event_type = json_pack("{s:I, s:s}", "webhookEventTypeId", (json_int_t)event_type_id, "webhookEventTypeName",
                               w->events[0]);
    json_t *by = json_null();
    if (created_by != NULL)
        by = json_pack("{s:s, s:s, s:I}", "fullName", created_by->full_name, "userCode", created_by->code, "userId",
                       (json_int_t)created_by->id);
    char created[40];
    if (w->registered_ms != 0)
        hk_fmt_date_iso(w->registered_ms, created, sizeof(created));

    json_t *v = json_object();
    json_object_set_new(v, "webhookId", json_integer(w->id));
    json_object_set_new(v, "webhookName", json_string(w->name));
    json_object_set_new(v, "webhookDescription", json_string(w->description));
    json_object_set_new(v, "url", json_string(w->url));
    json_object_set_new(v, "secret", json_string(w->secret));
    json_object_set_new(v, "active", json_boolean(w->state == HK_WH_ACTIVE));
    json_object_set_new(v, "webhookStatus", json_string(hk_webhook_state_name(w->state)));
    json_object_set_new(v, "mailingList", hk_view_notify(w));
    json_object_set_new(v, "eventType", event_type);
    json_object_set_new(v, "locked", json_boolean(w->locked));
    json_object_set_new(v, "createdDate", w->registered_ms ? json_string(created) : json_null());
    json_object_set_new(v, "createdBy", by);
    json_object_set_new(v, "successRate", json_real(hk_webhook_success_rate(st ? st : &none)));
    json_object_set_new(v, "extension", w->extension ? json_string(w->extension) : json_null());
    return v;
}

/* mailingList: a non-empty array of address strings. */
static int set_mailing_list(hk_webhook *w, const json_t *v, const char *prop, hk_wh_err *err)
{
    if (!json_is_array(v))
        return hk_wh_fail(err, 400, prop, "%s must be an array of email addresses", prop);
    size_t n = json_array_size(v);
    if (n == 0)
        return hk_wh_fail(err, 400, prop, "%s cannot be empty", prop);
    char **list = hk_calloc(n, sizeof(*list));
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(v, i));
        if (s == NULL) {
            free(list);
            return hk_wh_fail(err, 400, prop, "%s[%zu] must be a string", prop, i);
        }
        list[i] = (char *)s;
    }
    hk_view_set_notify(w, list, n);
    free(list);
    return 0;
}

/* The member of in named name in any letter case; NULL for absent or null. */
static json_t *member(const json_t *in, const char *name)
{
    const char *k = hk_json_object_key(in, name, true);
    json_t *v = k ? json_object_get(in, k) : NULL;
    return json_is_null(v) ? NULL : v;
}

int hk_view_ecap_parse(const json_t *in, hk_webhook *w, uint32_t *event_type_id, hk_wh_err *err)
{
    if (!json_is_object(in))
        return hk_wh_fail(err, 400, NULL, "the body must be a WebhookEditRequest object");
    static const char *const required[] = {
        "active", "mailingList", "secret", "url", "webhookDescription", "webhookEventTypeId", "webhookName"};
    for (size_t i = 0; i < HK_ARRAY_SIZE(required); i++)
        if (member(in, required[i]) == NULL)
            return hk_wh_fail(err, 400, required[i], "%s is required", required[i]);
    json_t *active = member(in, "active");
    if (!json_is_boolean(active))
        return hk_wh_fail(err, 400, "active", "active must be true or false");
    json_t *et = member(in, "webhookEventTypeId");
    if (!json_is_integer(et) || json_integer_value(et) < 1 || json_integer_value(et) > INT32_MAX)
        return hk_wh_fail(err, 400, "webhookEventTypeId", "webhookEventTypeId must be a positive integer");
    json_t *secret = member(in, "secret");
    if (json_is_string(secret) && json_string_length(secret) == 0)
        return hk_wh_fail(err, 400, "secret", "secret is required and cannot be empty");
    int rc;
    if ((rc = hk_view_set_text(&w->name, member(in, "webhookName"), "webhookName", err)) != 0 ||
        (rc = hk_view_set_text(&w->description, member(in, "webhookDescription"), "webhookDescription", err)) != 0 ||
        (rc = hk_view_set_text(&w->url, member(in, "url"), "url", err)) != 0 ||
        (rc = hk_view_set_text(&w->secret, secret, "secret", err)) != 0 ||
        (rc = set_mailing_list(w, member(in, "mailingList"), "mailingList", err)) != 0)
        return rc;
    const char *ek = hk_json_object_key(in, "extension", true);
    json_t *ext = ek ? json_object_get(in, ek) : NULL;
    if (ext != NULL && (rc = hk_view_set_extension(w, ext, "extension", err)) != 0)
        return rc;
    /* false on a webhook the server disabled keeps TooManyErrors: it is not active either way. */
    if (json_is_true(active))
        w->state = HK_WH_ACTIVE;
    else if (w->state != HK_WH_TOO_MANY_ERRORS)
        w->state = HK_WH_STOPPED;
    *event_type_id = (uint32_t)json_integer_value(et);
    return 0;
}
