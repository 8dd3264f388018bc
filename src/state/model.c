/* model.c: life cycle of the typed records (init, free, copy) and their small helpers. */
#include "model.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const state_names[] = {
    [HK_WH_ACTIVE] = "Active",
    [HK_WH_STOPPED] = "Stopped",
    [HK_WH_TOO_MANY_ERRORS] = "TooManyErrors",
};

const char *hk_webhook_state_name(enum hk_webhook_state s)
{
    if ((unsigned)s < HK_ARRAY_SIZE(state_names))
        return state_names[s];
    return "Stopped";
}

int hk_webhook_state_parse(const char *s)
{
    for (size_t i = 0; i < HK_ARRAY_SIZE(state_names); i++)
        if (strcasecmp(s, state_names[i]) == 0)
            return (int)i;
    return -1;
}

void hk_webhook_init(hk_webhook *w)
{
    memset(w, 0, sizeof(*w));
    w->name = hk_strdup("");
    w->description = hk_strdup("");
    w->url = hk_strdup("");
    w->secret = hk_strdup("");
    w->prev_secret = hk_strdup("");
    w->state = HK_WH_ACTIVE;
}

static void free_strings(char **v, size_t n)
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

void hk_webhook_free(hk_webhook *w)
{
    if (w == NULL)
        return;
    free(w->name);
    free(w->description);
    free(w->url);
    free(w->secret);
    free(w->prev_secret);
    free(w->extension);
    free_strings(w->events, w->nevents);
    free_pairs(w->headers, w->nheaders);
    free_pairs(w->properties, w->nproperties);
    free_strings(w->notify, w->nnotify);
    memset(w, 0, sizeof(*w));
}

static char *dup_or_null(const char *s)
{
    return s ? hk_strdup(s) : NULL;
}

static char **copy_strings(char *const *v, size_t n)
{
    if (n == 0)
        return NULL;
    char **out = hk_calloc(n, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = dup_or_null(v[i]);
    return out;
}

static hk_pair *copy_pairs(const hk_pair *p, size_t n)
{
    if (n == 0)
        return NULL;
    hk_pair *out = hk_calloc(n, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        out[i].name = dup_or_null(p[i].name);
        out[i].value = dup_or_null(p[i].value);
    }
    return out;
}

void hk_webhook_copy(hk_webhook *dst, const hk_webhook *src)
{
    *dst = *src;
    dst->name = dup_or_null(src->name);
    dst->description = dup_or_null(src->description);
    dst->url = dup_or_null(src->url);
    dst->secret = dup_or_null(src->secret);
    dst->prev_secret = dup_or_null(src->prev_secret);
    dst->extension = dup_or_null(src->extension);
    dst->events = copy_strings(src->events, src->nevents);
    dst->headers = copy_pairs(src->headers, src->nheaders);
    dst->properties = copy_pairs(src->properties, src->nproperties);
    dst->notify = copy_strings(src->notify, src->nnotify);
}

bool hk_webhook_subscribes(const hk_webhook *w, const char *name)
{
    for (size_t i = 0; i < w->nevents; i++)
        if (w->events[i] != NULL && strcmp(w->events[i], name) == 0)
            return true;
    return false;
}

double hk_webhook_success_rate(const hk_webhook_stats *st)
{
    if (st->calls == 0)
        return 0.0; /* no deliveries yet: no successes to count */
    return 100.0 * (double)(st->calls - st->errors) / (double)st->calls;
}

void hk_event_free(hk_event *e)
{
    if (e == NULL)
        return;
    free(e->name);
    free(e->changes);
    free(e->data);
    memset(e, 0, sizeof(*e));
}

void hk_event_uuid_str(const uint8_t u[16], char out[HK_EVENT_UUID_LEN])
{
    /* By hand, not by printf: every delivery taken into the window formats one. */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 15];
    }
    out[o] = '\0';
}

void hk_attempt_free(hk_attempt *a)
{
    if (a == NULL)
        return;
    free(a->event_name);
    free(a->event_uuid);
    free(a->error);
    free(a->url);
    free(a->request);
    free(a->response);
    free(a->user_agent);
    free(a->webhook_name);
    free(a->props);
    free(a->custom_headers);
    free(a->sig_so);
    free(a->sig_standard);
    memset(a, 0, sizeof(*a));
}
