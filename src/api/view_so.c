/* view_so.c: the SuperOffice view of a webhook (see view_so.h). */
#include "view_so.h"

#include <string.h>
#include <strings.h>

#include "date.h"
#include "json_patch.h"
#include "view.h"

const hk_wh_names hk_view_so_names = {
    .name = "Name",
    .description = "Description",
    .url = "TargetUrl",
    .secret = "Secret",
    .state = "State",
    .events = "Events",
    .headers = "Headers",
    .properties = "Properties",
    .notify = "ErrorsEmail",
    .extension = "Extension",
};

/* The member of in named name in any letter case; NULL for absent or null. */
static json_t *member(const json_t *in, const char *name)
{
    const char *k = hk_json_object_key(in, name, true);
    json_t *v = k ? json_object_get(in, k) : NULL;
    return json_is_null(v) ? NULL : v;
}

static json_t *date_so(uint64_t ms)
{
    char buf[40];
    if (ms == 0)
        return json_null();
    hk_fmt_date_so(ms, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *associate(const hk_user *u)
{
    if (u == NULL)
        return json_null();
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:b}", "AssociateId", (json_int_t)u->id, "Name", u->code, "FullName",
                     u->full_name, "FormalName", u->full_name, "Type", "Associate", "Deleted", 0);
}

/* The addresses joined by ",". */
static json_t *notify_joined(const hk_webhook *w)
{
    size_t len = 1;
    for (size_t i = 0; i < w->nnotify; i++)
        len += strlen(w->notify[i]) + 1;
    char *buf = hk_malloc(len), *p = buf;
    for (size_t i = 0; i < w->nnotify; i++) {
        size_t n = strlen(w->notify[i]);
        if (i > 0)
            *p++ = ',';
        memcpy(p, w->notify[i], n);
        p += n;
    }
    *p = '\0';
    json_t *s = json_string(buf);
    free(buf);
    return s;
}

json_t *hk_view_so(const hk_webhook *w, const hk_user *registered_by, const hk_user *updated_by)
{
    json_t *v = json_object();
    json_object_set_new(v, "WebhookId", json_integer(w->id));
    json_object_set_new(v, "Name", json_string(w->name));
    json_object_set_new(v, "Events", hk_view_events(w));
    json_object_set_new(v, "TargetUrl", json_string(w->url));
    json_object_set_new(v, "Secret", json_string(w->secret));
    json_object_set_new(v, "State", json_string(hk_webhook_state_name(w->state)));
    json_object_set_new(v, "Type", json_string("webhook"));
    json_object_set_new(v, "Headers", hk_view_headers(w));
    json_object_set_new(v, "Properties", hk_view_properties(w));
    json_object_set_new(v, "Registered", date_so(w->registered_ms));
    json_object_set_new(v, "RegisteredAssociate", associate(registered_by));
    json_object_set_new(v, "Updated", date_so(w->updated_ms));
    json_object_set_new(v, "UpdatedAssociate", associate(updated_by));
    json_object_set_new(v, "ErrorsEmail", notify_joined(w));
    json_object_set_new(v, "Extension", w->extension ? json_string(w->extension) : json_null());
    return v;
}

/* ErrorsEmail: addresses separated by , or ; (blanks around them ignored). */
static int set_notify_text(hk_webhook *w, const json_t *v, const char *prop, hk_wh_err *err)
{
    if (v != NULL && !json_is_string(v))
        return hk_wh_fail(err, 400, prop, "%s must be a string", prop);
    const char *s = v ? json_string_value(v) : "";
    size_t n = 0, cap = 0;
    char **list = NULL;
    while (*s) {
        size_t len = strcspn(s, ",;");
        const char *b = s, *e = s + len;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > b) {
            if (n == cap) {
                cap = cap ? cap * 2 : 4;
                list = hk_realloc(list, cap * sizeof(*list));
            }
            list[n++] = hk_strndup(b, (size_t)(e - b));
        }
        s += len;
        if (*s)
            s++;
    }
    hk_view_set_notify(w, list, n);
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
    return 0;
}

/* State: the names, or SuperOffice's numbers 1 = Active, 2 = Stopped, 3 = TooManyErrors; absent is Active. */
static int set_state(hk_webhook *w, const json_t *state, hk_wh_err *err)
{
    enum hk_webhook_state st = HK_WH_ACTIVE;
    if (json_is_string(state)) {
        const char *s = json_string_value(state);
        int parsed = hk_webhook_state_parse(s);
        if (parsed >= 0)
            st = (enum hk_webhook_state)parsed;
        else if (strcmp(s, "1") == 0 || strcmp(s, "2") == 0 || strcmp(s, "3") == 0)
            st = (enum hk_webhook_state)(s[0] - '1');
        else
            return hk_wh_fail(err, 400, "State", "State must be Active or Stopped, not \"%.32s\"", s);
    } else if (json_is_integer(state)) {
        json_int_t n = json_integer_value(state);
        if (n < 1 || n > 3)
            return hk_wh_fail(err, 400, "State", "State must be Active (1) or Stopped (2)");
        st = (enum hk_webhook_state)(n - 1);
    } else if (state != NULL) {
        return hk_wh_fail(err, 400, "State", "State must be a string");
    }
    w->state = st;
    return 0;
}

static int check_type(const json_t *type, hk_wh_err *err)
{
    if (type == NULL)
        return 0;
    if (!json_is_string(type))
        return hk_wh_fail(err, 400, "Type", "Type must be a string");
    const char *t = json_string_value(type);
    if (strcasecmp(t, "webhook") == 0)
        return 0;
    if (strcasecmp(t, "crmscript") == 0)
        return hk_wh_fail(err, 400, "Type",
                          "Type \"crmscript\" is not supported: CRM scripts cannot run here; use \"webhook\"");
    return hk_wh_fail(err, 400, "Type", "Type \"%.64s\" is not supported; the only type is \"webhook\"", t);
}

int hk_view_so_parse(const json_t *in, hk_webhook *w, hk_wh_err *err)
{
    if (!json_is_object(in))
        return hk_wh_fail(err, 400, NULL, "the body must be a Webhook object");
    json_t *url = member(in, "TargetUrl");
    int rc;
    if ((rc = hk_view_set_text(&w->name, member(in, "Name"), "Name", err)) != 0 ||
        (rc = hk_view_set_events(w, member(in, "Events"), "Events", err)) != 0)
        return rc;
    if (url == NULL)
        return hk_wh_fail(err, 400, "TargetUrl", "TargetUrl is required");
    if ((rc = hk_view_set_text(&w->url, url, "TargetUrl", err)) != 0 ||
        (rc = hk_view_set_text(&w->secret, member(in, "Secret"), "Secret", err)) != 0 ||
        (rc = hk_view_set_headers(w, member(in, "Headers"), "Headers", err)) != 0 ||
        (rc = set_notify_text(w, member(in, "ErrorsEmail"), "ErrorsEmail", err)) != 0 ||
        (rc = hk_view_set_extension(w, member(in, "Extension"), "Extension", err)) != 0 ||
        (rc = check_type(member(in, "Type"), err)) != 0 ||
        (rc = hk_view_set_properties(w, member(in, "Properties"), "Properties", err)) != 0 ||
        (rc = set_state(w, member(in, "State"), err)) != 0)
        return rc;
    return 0;
}
