/* view.c: field setters and JSON forms shared by the two dialect views (see view.h). */
#include "view.h"

#include <string.h>

int hk_view_set_text(char **dst, const json_t *v, const char *prop, hk_wh_err *err)
{
    if (v != NULL && !json_is_string(v))
        return hk_wh_fail(err, 400, prop, "%s must be a string", prop);
    free(*dst);
    *dst = hk_strdup(v ? json_string_value(v) : "");
    return 0;
}

int hk_view_set_extension(hk_webhook *w, const json_t *v, const char *prop, hk_wh_err *err)
{
    if (v != NULL && !json_is_null(v) && !json_is_string(v))
        return hk_wh_fail(err, 400, prop, "%s must be a string or null", prop);
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    free(w->extension);
    w->extension = *s ? hk_strdup(s) : NULL;
    return 0;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_pairs(hk_pair *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].name);
        free(p[i].value);
    }
    free(p);
}

int hk_view_set_events(hk_webhook *w, const json_t *v, const char *prop, hk_wh_err *err)
{
    if (v != NULL && !json_is_array(v))
        return hk_wh_fail(err, 400, prop, "%s must be an array of event names", prop);
    size_t n = json_array_size(v), o = 0;
    char **events = n ? hk_calloc(n, sizeof(*events)) : NULL;
    json_t *seen = json_object();
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_array_get(v, i));
        if (name == NULL) {
            free_strv(events, o);
            json_decref(seen);
            return hk_wh_fail(err, 400, prop, "%s[%zu] must be an event name (1..%d characters, no spaces)", prop, i,
                              HK_EVENT_NAME_MAX);
        }
        if (json_object_get(seen, name) != NULL)
            continue;
        json_object_set_new(seen, name, json_true());
        events[o++] = hk_strdup(name);
    }
    json_decref(seen);
    free_strv(w->events, w->nevents);
    w->events = events;
    w->nevents = o;
    return 0;
}

void hk_view_set_notify(hk_webhook *w, char **addrs, size_t n)
{
    char **list = n ? hk_calloc(n, sizeof(*list)) : NULL;
    for (size_t i = 0; i < n; i++)
        list[i] = hk_strdup(addrs[i]);
    free_strv(w->notify, w->nnotify);
    w->notify = list;
    w->nnotify = n;
}

int hk_view_set_headers(hk_webhook *w, const json_t *v, const char *prop, hk_wh_err *err)
{
    if (v != NULL && !json_is_object(v))
        return hk_wh_fail(err, 400, prop, "%s must be an object of string values", prop);
    size_t n = json_object_size(v), o = 0;
    hk_pair *pairs = n ? hk_calloc(n, sizeof(*pairs)) : NULL;
    const char *k;
    json_t *h;
    json_object_foreach ((json_t *)v, k, h) {
        if (!json_is_string(h)) {
            free_pairs(pairs, o);
            return hk_wh_fail(err, 400, prop, "%s.%.100s must be a string", prop, k);
        }
        pairs[o].name = hk_strdup(k);
        pairs[o++].value = hk_strdup(json_string_value(h));
    }
    free_pairs(w->headers, w->nheaders);
    w->headers = pairs;
    w->nheaders = o;
    return 0;
}

int hk_view_set_properties(hk_webhook *w, const json_t *v, const char *prop, hk_wh_err *err)
{
    if (v != NULL && !json_is_object(v))
        return hk_wh_fail(err, 400, prop, "%s must be an object", prop);
    size_t n = json_object_size(v), o = 0;
    hk_pair *pairs = n ? hk_calloc(n, sizeof(*pairs)) : NULL;
    const char *k;
    json_t *p;
    json_object_foreach ((json_t *)v, k, p) {
        pairs[o].name = hk_strdup(k);
        pairs[o++].value = json_dumps(p, JSON_COMPACT | JSON_ENCODE_ANY);
    }
    free_pairs(w->properties, w->nproperties);
    w->properties = pairs;
    w->nproperties = o;
    return 0;
}

static json_t *strv_json(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

json_t *hk_view_events(const hk_webhook *w)
{
    return strv_json(w->events, w->nevents);
}

json_t *hk_view_notify(const hk_webhook *w)
{
    return strv_json(w->notify, w->nnotify);
}

json_t *hk_view_headers(const hk_webhook *w)
{
    json_t *o = json_object();
    for (size_t i = 0; i < w->nheaders; i++)
        json_object_set_new(o, w->headers[i].name, json_string(w->headers[i].value));
    return o;
}

json_t *hk_view_properties(const hk_webhook *w)
{
    json_t *o = json_object();
    for (size_t i = 0; i < w->nproperties; i++) {
        const char *text = w->properties[i].value;
        json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
        json_object_set_new(o, w->properties[i].name, v ? v : json_null());
    }
    return o;
}
