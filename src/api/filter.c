/*
 * filter.c: the EnergyCAP filter grammar (see filter.h): one parser, one
 * matcher, and the field tables of the two lists that take a filter.
 *
 * The parser walks the text once, left to right. Every token is tried
 * against a fixed, small set of spellings, and a value is scanned once to
 * find its end and once to copy it, so the work is linear in the text.
 */
#include "filter.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "date.h"
#include "utf8.h"

#define TOKEN_SHOWN_MAX 40 /* bytes of a bad token quoted in an error */

enum op { OP_EQ, OP_NE, OP_LIKE, OP_NOT_LIKE, OP_IN, OP_NOT_IN, OP_GT, OP_GE, OP_LT, OP_LE, OP_BETWEEN };

/* Operators a kind takes, as bit masks of 1 << op. */
#define OPS_SET ((1u << OP_EQ) | (1u << OP_NE) | (1u << OP_IN) | (1u << OP_NOT_IN))
#define OPS_LIKE ((1u << OP_LIKE) | (1u << OP_NOT_LIKE))
#define OPS_ORDER ((1u << OP_GT) | (1u << OP_GE) | (1u << OP_LT) | (1u << OP_LE) | (1u << OP_BETWEEN))

static const unsigned kind_ops[] = {
    [HK_FILTER_TEXT] = OPS_SET | OPS_LIKE,
    [HK_FILTER_INT] = OPS_SET | OPS_LIKE | OPS_ORDER,
    [HK_FILTER_BOOL] = OPS_SET | OPS_LIKE,
    [HK_FILTER_DATE] = OPS_SET | OPS_ORDER,
};

static const char *const kind_names[] = {
    [HK_FILTER_TEXT] = "text",
    [HK_FILTER_INT] = "an integer",
    [HK_FILTER_BOOL] = "true or false",
    [HK_FILTER_DATE] = "a date",
};

/* Spellings, longer ones first where one is a prefix of another, so that
 * "greater than or equal" is not read as "greater than" and a value "or". */
static const struct {
    const char *text;
    enum op op;
} op_spellings[] = {
    {"not one of", OP_NOT_IN},
    {"not equals", OP_NE},
    {"not like", OP_NOT_LIKE},
    {"one of", OP_IN},
    {"equals", OP_EQ},
    {"like", OP_LIKE},
    {"greater than or equal", OP_GE},
    {"greater than", OP_GT},
    {"less than or equal", OP_LE},
    {"less than", OP_LT},
    {"between", OP_BETWEEN},
    {"eq", OP_EQ},
    {"ne", OP_NE},
    {"in", OP_IN},
};

/* One value of a condition, read for its field's kind. */
struct value {
    char *text;   /* TEXT: the text; INT: its canonical digits (for like) */
    bool pattern; /* TEXT and INT like: holds % or _ */
    int64_t lo;   /* INT: the number; BOOL: 0 or 1; DATE: the span's first ms */
    int64_t hi;   /* DATE: the span's last ms */
};

struct cond {
    const hk_filter_field *field;
    enum op op;
    size_t n; /* values */
    struct value v[HK_FILTER_VALUES_MAX];
};

struct hk_filter {
    size_t n; /* conditions */
    struct cond c[HK_FILTER_CONDS_MAX];
};

/* ---- lexing ---------------------------------------------------------------- */

static const char *skip_ws(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

/* Where a keyword may end: the end, white space, or a quote opening a value. */
static bool boundary(char c)
{
    return c == '\0' || isspace((unsigned char)c) || c == '"' || c == '\'';
}

/* Matches a keyword phrase (words separated by single blanks in phrase, by
 * any white space in p) at p, case-insensitively; returns the position after
 * it or NULL. */
static const char *keyword(const char *p, const char *phrase)
{
    while (*phrase != '\0') {
        if (*phrase == ' ') {
            if (!isspace((unsigned char)*p))
                return NULL;
            p = skip_ws(p);
            phrase++;
            continue;
        }
        if (tolower((unsigned char)*p) != *phrase)
            return NULL;
        p++;
        phrase++;
    }
    return boundary(*p) ? p : NULL;
}

/* Copies the token at p (up to white space, at most TOKEN_SHOWN_MAX bytes,
 * "..." when cut) into out as printable UTF-8 an error can quote: control
 * characters and broken sequences become '?'. */
static void show_token(const char *p, char *out, size_t outlen)
{
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)p;
    while (*s != '\0' && !isspace(*s)) {
        size_t n = hk_utf8_seq((const char *)s, strnlen((const char *)s, 4));
        if (o + (n ? n : 1) + 4 > outlen || o + (n ? n : 1) > TOKEN_SHOWN_MAX) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (n == 0 || *s < 0x20 || *s == 0x7f) {
            out[o++] = '?';
            s++;
        } else {
            memcpy(out + o, s, n);
            o += n;
            s += n;
        }
    }
    out[o] = '\0';
}

static int fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(err, HK_FILTER_ERR_MAX, "filter: ");
    vsnprintf(err + n, HK_FILTER_ERR_MAX - (size_t)n, fmt, ap);
    va_end(ap);
    return HK_EINVAL;
}

/* The error for an unexpected token at p (or the end of the text). */
static int fail_at(char *err, const char *p, const char *expected)
{
    if (*p == '\0')
        return fail(err, "expected %s at the end", expected);
    char tok[TOKEN_SHOWN_MAX + 8];
    show_token(p, tok, sizeof(tok));
    return fail(err, "expected %s, found \"%s\"", expected, tok);
}

/* True when p starts a two-character escape inside a value quoted with q. */
static bool escape_at(const char *p, char q)
{
    return (p[0] == '\\' && (p[1] == q || p[1] == '\\')) || (p[0] == q && p[1] == q);
}

/*
 * Reads one value at *pp (white space skipped) into a malloc'd string:
 * quoted ("..." or '...'; a doubled quote or a backslash before the quote or
 * a backslash stands for that character) or bare (up to white space, or also
 * , and | in a list). NULL with err written when there is none or a quote is
 * not closed.
 */
static char *read_value(const char **pp, bool in_list, char *err)
{
    const char *p = skip_ws(*pp);
    const char *start, *end;
    size_t len = 0;
    char q = 0;
    if (*p == '"' || *p == '\'') {
        q = *p++;
        start = p;
        for (;;) {
            if (*p == '\0') {
                char tok[TOKEN_SHOWN_MAX + 8];
                show_token(start - 1, tok, sizeof(tok));
                fail(err, "value %s has no closing %c", tok, q);
                return NULL;
            }
            if (escape_at(p, q))
                p += 2;
            else if (*p == q)
                break;
            else
                p++;
            len++;
        }
        end = p + 1;
    } else {
        start = p;
        while (*p != '\0' && !isspace((unsigned char)*p) && !(in_list && (*p == ',' || *p == '|')))
            p++;
        if (p == start) {
            fail_at(err, p, "a value");
            return NULL;
        }
        len = (size_t)(p - start);
        end = p;
    }
    char *out = hk_malloc(len + 1);
    size_t o = 0;
    for (p = start; o < len; o++) {
        if (q != 0 && escape_at(p, q))
            p++;
        out[o] = *p++;
    }
    out[o] = '\0';
    *pp = end;
    return out;
}

/* ---- values for a field's kind ---------------------------------------------- */

/* The last ms of the span a date text names (see filter.h). */
static int64_t date_span_end(const char *text, int64_t start)
{
    if (strlen(text) == 10)
        return start + 86400000 - 1;
    if (strchr(text, '.') == NULL && strchr(text, 'T') != NULL)
        return start + 999;
    return start;
}

/* Reads text (owned, taken) as a value of field f into v. */
static int make_value(const hk_filter_field *f, enum op op, char *text, struct value *v, char *err)
{
    memset(v, 0, sizeof(*v));
    v->text = text;
    switch (f->kind) {
    case HK_FILTER_TEXT: v->pattern = (op == OP_LIKE || op == OP_NOT_LIKE) && strpbrk(text, "%_") != NULL; return 0;
    case HK_FILTER_INT: {
        char *end;
        errno = 0;
        long long n = strtoll(text, &end, 10);
        if (*text == '\0' || *end != '\0' || errno != 0)
            break;
        v->lo = n;
        /* like compares the digits as text: the canonical ones. */
        char buf[32];
        snprintf(buf, sizeof(buf), "%lld", n);
        free(v->text);
        v->text = hk_strdup(buf);
        return 0;
    }
    case HK_FILTER_BOOL:
        if (strcasecmp(text, "true") == 0 || strcmp(text, "1") == 0)
            v->lo = 1;
        else if (strcasecmp(text, "false") == 0 || strcmp(text, "0") == 0)
            v->lo = 0;
        else
            break;
        return 0;
    case HK_FILTER_DATE: {
        uint64_t ms;
        if (hk_parse_date(text, &ms) != 0)
            break;
        v->lo = (int64_t)ms;
        v->hi = date_span_end(text, v->lo);
        return 0;
    }
    }
    char tok[TOKEN_SHOWN_MAX + 8];
    show_token(text, tok, sizeof(tok));
    if (f->kind == HK_FILTER_DATE)
        return fail(err, "%s needs a date (2026-11-22 or 2026-11-22T10:00:00Z), not \"%s\"", f->name, tok);
    return fail(err, "%s needs %s, not \"%s\"", f->name, kind_names[f->kind], tok);
}

/* ---- parsing ----------------------------------------------------------------- */

/* "a, b and c" of the fields of a table, for an error. */
static void field_list(const hk_filter_field *fields, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; fields[i].name != NULL && o < outlen; i++) {
        int n = snprintf(out + o, outlen - o, "%s%s", i ? ", " : "", fields[i].name);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

static const char *parse_field(const char *p, const hk_filter_field *fields, const hk_filter_field **out, char *err)
{
    size_t len = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.");
    for (size_t i = 0; len > 0 && fields[i].name != NULL; i++) {
        if (hk_strncaseeq(p, len, fields[i].name) == 0) {
            *out = &fields[i];
            return p + len;
        }
    }
    char tok[TOKEN_SHOWN_MAX + 8], names[160];
    show_token(p, tok, sizeof(tok));
    field_list(fields, names, sizeof(names));
    fail(err, "unknown field \"%s\" (fields: %s)", tok, names);
    return NULL;
}

static const char *parse_op(const char *p, const hk_filter_field *f, enum op *op, char *err)
{
    const char *after = NULL;
    for (size_t i = 0; i < HK_ARRAY_SIZE(op_spellings) && after == NULL; i++)
        if ((after = keyword(p, op_spellings[i].text)) != NULL)
            *op = op_spellings[i].op;
    char tok[TOKEN_SHOWN_MAX + 8];
    if (after != NULL && (kind_ops[f->kind] & (1u << *op)) != 0)
        return after;
    if (*p == '\0') {
        fail(err, "expected an operator after %s at the end", f->name);
        return NULL;
    }
    show_token(p, tok, sizeof(tok));
    if (after != NULL) {
        fail(err, "operator \"%.*s\" does not apply to %s, which is %s", (int)(after - p), p, f->name,
             kind_names[f->kind]);
        return NULL;
    }
    const char *ops = f->kind == HK_FILTER_TEXT || f->kind == HK_FILTER_BOOL
                          ? "equals, not equals, like, not like, one of, not one of"
                      : f->kind == HK_FILTER_DATE
                          ? "equals, not equals, one of, not one of, greater than [or equal], "
                            "less than [or equal], between ... and ..."
                          : "equals, not equals, like, not like, one of, not one of, "
                            "greater than [or equal], less than [or equal], between ... and ...";
    fail(err, "unknown operator \"%s\" after %s (use %s)", tok, f->name, ops);
    return NULL;
}

/* Reads the value(s) of c after its operator. */
static const char *parse_values(const char *p, struct cond *c, char *err)
{
    bool list = c->op == OP_IN || c->op == OP_NOT_IN;
    for (;;) {
        if (c->n == HK_FILTER_VALUES_MAX) {
            fail(err, "at most %d values in one of", HK_FILTER_VALUES_MAX);
            return NULL;
        }
        char *text = read_value(&p, list, err);
        if (text == NULL)
            return NULL;
        /* The value is c's from here on, so that freeing c frees it. */
        if (make_value(c->field, c->op, text, &c->v[c->n++], err) != 0)
            return NULL;
        const char *q = skip_ws(p);
        if (list && (*q == ',' || *q == '|')) {
            p = q + 1;
            continue;
        }
        if (c->op == OP_BETWEEN && c->n == 1) {
            const char *next = keyword(q, "and");
            if (next == NULL) {
                fail_at(err, q, "\"and\" between the two values of between");
                return NULL;
            }
            p = next;
            continue;
        }
        return p;
    }
}

int hk_filter_parse(const char *text, const hk_filter_field *fields, hk_filter **out, char err[HK_FILTER_ERR_MAX])
{
    hk_filter *f = hk_calloc(1, sizeof(*f));
    const char *p = skip_ws(text);
    *out = NULL;
    err[0] = '\0';
    while (*p != '\0') {
        if (f->n == HK_FILTER_CONDS_MAX) {
            fail(err, "at most %d conditions", HK_FILTER_CONDS_MAX);
            goto fail_free;
        }
        struct cond *c = &f->c[f->n++];
        if ((p = parse_field(p, fields, &c->field, err)) == NULL)
            goto fail_free;
        if ((p = parse_op(skip_ws(p), c->field, &c->op, err)) == NULL)
            goto fail_free;
        if ((p = parse_values(p, c, err)) == NULL)
            goto fail_free;
        p = skip_ws(p);
        if (*p == '\0')
            break;
        const char *next = keyword(p, "and");
        if (next == NULL) {
            fail_at(err, p, "\"and\"");
            goto fail_free;
        }
        p = skip_ws(next);
        if (*p == '\0') {
            fail(err, "a condition must follow \"and\"");
            goto fail_free;
        }
    }
    *out = f;
    return 0;
fail_free:
    hk_filter_free(f);
    return HK_EINVAL;
}

size_t hk_filter_conditions(const hk_filter *f)
{
    return f ? f->n : 0;
}

void hk_filter_free(hk_filter *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n; i++)
        for (size_t j = 0; j < f->c[i].n; j++)
            free(f->c[i].v[j].text);
    free(f);
}

/* ---- matching ------------------------------------------------------------------ */

/* SQL LIKE, case-insensitively: % any run, _ any one byte. Iterative, so a
 * pattern of many % costs at most length(s) * length(pat) steps. */
static bool like(const char *s, const char *pat)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pat == '%') {
            star = pat++;
            resume = s;
        } else if (*pat != '\0' && (*pat == '_' || tolower((unsigned char)*s) == tolower((unsigned char)*pat))) {
            s++;
            pat++;
        } else if (star != NULL) {
            pat = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '%')
        pat++;
    return *pat == '\0';
}

static bool text_like(const char *have, const struct value *v)
{
    return v->pattern ? like(have, v->text) : strcasestr(have, v->text) != NULL;
}

/* Whether one value of the field satisfies one value of the positive form of c's operator. */
static bool hit(const struct cond *c, const hk_filter_value *have, const struct value *v)
{
    enum hk_filter_kind kind = c->field->kind;
    bool likeop = c->op == OP_LIKE || c->op == OP_NOT_LIKE;
    switch (kind) {
    case HK_FILTER_TEXT:
        return likeop ? text_like(have->text ? have->text : "", v)
                      : strcasecmp(have->text ? have->text : "", v->text) == 0;
    case HK_FILTER_BOOL: return (have->num != 0) == (v->lo != 0);
    case HK_FILTER_INT:
        if (likeop) {
            char buf[32];
            snprintf(buf, sizeof(buf), "%" PRId64, have->num);
            return text_like(buf, v);
        }
        switch (c->op) {
        case OP_GT: return have->num > v->lo;
        case OP_GE: return have->num >= v->lo;
        case OP_LT: return have->num < v->lo;
        case OP_LE: return have->num <= v->lo;
        default: return have->num == v->lo;
        }
    case HK_FILTER_DATE:
        switch (c->op) {
        case OP_GT: return have->num > v->hi;
        case OP_GE: return have->num >= v->lo;
        case OP_LT: return have->num < v->lo;
        case OP_LE: return have->num <= v->hi;
        default: return have->num >= v->lo && have->num <= v->hi;
        }
    }
    return false;
}

static bool visit(const hk_filter_value *have, void *arg)
{
    const struct cond *c = arg;
    if (c->op == OP_BETWEEN) {
        if (c->field->kind == HK_FILTER_DATE)
            return have->num >= c->v[0].lo && have->num <= c->v[1].hi;
        return have->num >= c->v[0].lo && have->num <= c->v[1].lo;
    }
    for (size_t i = 0; i < c->n; i++)
        if (hit(c, have, &c->v[i]))
            return true;
    return false;
}

static bool cond_matches(const struct cond *c, const void *rec)
{
    bool any = c->field->each(rec, visit, (void *)c);
    bool negated = c->op == OP_NE || c->op == OP_NOT_LIKE || c->op == OP_NOT_IN;
    return negated ? !any : any;
}

bool hk_filter_match(const hk_filter *f, const void *rec)
{
    if (f == NULL)
        return true;
    for (size_t i = 0; i < f->n; i++)
        if (!cond_matches(&f->c[i], rec))
            return false;
    return true;
}

/* ---- the webhook list's fields --------------------------------------------------- */

static bool one_text(const char *s, hk_filter_visit fn, void *arg)
{
    hk_filter_value v = {s ? s : "", 0};
    return fn(&v, arg);
}

static bool one_num(int64_t n, hk_filter_visit fn, void *arg)
{
    hk_filter_value v = {"", n};
    return fn(&v, arg);
}

#define WH(rec) (((const hk_filter_webhook *)(rec))->webhook)

static bool wh_id(const void *rec, hk_filter_visit fn, void *arg)
{
    return one_num(WH(rec)->id, fn, arg);
}

static bool wh_name(const void *rec, hk_filter_visit fn, void *arg)
{
    return one_text(WH(rec)->name, fn, arg);
}

static bool wh_desc(const void *rec, hk_filter_visit fn, void *arg)
{
    return one_text(WH(rec)->description, fn, arg);
}

static bool wh_url(const void *rec, hk_filter_visit fn, void *arg)
{
    return one_text(WH(rec)->url, fn, arg);
}

static bool wh_event_name(const void *rec, hk_filter_visit fn, void *arg)
{
    const hk_webhook *w = WH(rec);
    for (size_t i = 0; i < w->nevents; i++)
        if (one_text(w->events[i], fn, arg))
            return true;
    return false;
}

static bool wh_event_id(const void *rec, hk_filter_visit fn, void *arg)
{
    const hk_filter_webhook *fw = rec;
    if (fw->event_type_id == NULL)
        return false;
    for (size_t i = 0; i < fw->webhook->nevents; i++) {
        uint32_t id;
        if (fw->event_type_id(fw->arg, fw->webhook->events[i], &id) == 0 && one_num(id, fn, arg))
            return true;
    }
    return false;
}

/* TEMPORARY: hk_webhook_state_name once model.h is implemented. */
static const char *state_name(enum hk_webhook_state s)
{
    return s == HK_WH_ACTIVE ? "Active" : s == HK_WH_STOPPED ? "Stopped" : "TooManyErrors";
}

static bool wh_status(const void *rec, hk_filter_visit fn, void *arg)
{
    return one_text(state_name(WH(rec)->state), fn, arg);
}

static bool wh_active(const void *rec, hk_filter_visit fn, void *arg)
{
    return one_num(WH(rec)->state == HK_WH_ACTIVE, fn, arg);
}

static bool wh_locked(const void *rec, hk_filter_visit fn, void *arg)
{
    return one_num(WH(rec)->locked, fn, arg);
}

static bool wh_extension(const void *rec, hk_filter_visit fn, void *arg)
{
    return one_text(WH(rec)->extension, fn, arg);
}

const hk_filter_field hk_filter_webhook_fields[] = {
    {"webhookId", HK_FILTER_INT, wh_id},
    {"webhookName", HK_FILTER_TEXT, wh_name},
    {"webhookDescription", HK_FILTER_TEXT, wh_desc},
    {"url", HK_FILTER_TEXT, wh_url},
    {"webhookEventTypeId", HK_FILTER_INT, wh_event_id},
    {"webhookEventTypeName", HK_FILTER_TEXT, wh_event_name},
    {"webhookStatus", HK_FILTER_TEXT, wh_status},
    {"active", HK_FILTER_BOOL, wh_active},
    {"locked", HK_FILTER_BOOL, wh_locked},
    {"extension", HK_FILTER_TEXT, wh_extension},
    {NULL, HK_FILTER_TEXT, NULL},
};

/* ---- the attempt log's fields ------------------------------------------------------ */

static bool at_result(const void *rec, hk_filter_visit fn, void *arg)
{
    return one_num(((const hk_attempt *)rec)->status, fn, arg);
}

static bool at_date(const void *rec, hk_filter_visit fn, void *arg)
{
    return one_num((int64_t)((const hk_attempt *)rec)->started_ms, fn, arg);
}

const hk_filter_field hk_filter_attempt_fields[] = {
    {"result", HK_FILTER_INT, at_result},
    {"logDate", HK_FILTER_DATE, at_date},
    {NULL, HK_FILTER_TEXT, NULL},
};
