/*
 * pg_import.c: the CSV of HK_OP_TREE_IMPORT read for the PostgreSQL engine
 * (pg_ops.h): rows checked one by one as the embedded engine checks them
 * (state/accounts.c: RFC 4180, blank lines skipped, a header whose first
 * field is "id", a UTF-8 byte order mark, ids, names, repeated ids), so
 * that the database is sent only well-formed rows; whether their parents
 * and nodes exist, and whether the tree stays a tree, is decided in the
 * import's transaction (hookd_tree_import, pg_schema/003_ops.sql).
 *
 * The reading mirrors accounts.c's, whose parser is private to the
 * embedded engine; both must give the same messages.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "pg_ops.h"
#include "utf8.h"

#define CSV_FIELDS 3
#define CSV_FIELD_MAX HK_NODE_NAME_MAX

struct csv {
    const char *p, *end;
    size_t line;
    size_t rec_line;
};

static void say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* One record into f (nf fields): 1 with a record, 0 at the end, -1 with a message in err. */
static int csv_record(struct csv *c, char f[CSV_FIELDS][CSV_FIELD_MAX + 1], int *nf, char *err, size_t errlen)
{
    while (c->p < c->end && (*c->p == '\n' || *c->p == '\r')) {
        if (*c->p == '\n')
            c->line++;
        c->p++;
    }
    if (c->p >= c->end)
        return 0;
    c->rec_line = c->line;
    *nf = 0;
    for (;;) {
        if (*nf == CSV_FIELDS) {
            say(err, errlen, "line %zu: more than %d fields", c->line, CSV_FIELDS);
            return -1;
        }
        char *out = f[(*nf)++];
        size_t n = 0;
        if (c->p < c->end && *c->p == '"') {
            c->p++;
            for (;;) {
                if (c->p >= c->end) {
                    say(err, errlen, "line %zu: unterminated quoted field", c->line);
                    return -1;
                }
                char ch = *c->p++;
                if (ch == '"') {
                    if (c->p < c->end && *c->p == '"')
                        c->p++;
                    else
                        break;
                }
                if (ch == '\n')
                    c->line++;
                if (n == CSV_FIELD_MAX) {
                    say(err, errlen, "line %zu: field longer than %d bytes", c->line, CSV_FIELD_MAX);
                    return -1;
                }
                out[n++] = ch;
            }
        } else {
            while (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r') {
                if (*c->p == '"') {
                    say(err, errlen, "line %zu: a quote inside an unquoted field", c->line);
                    return -1;
                }
                if (n == CSV_FIELD_MAX) {
                    say(err, errlen, "line %zu: field longer than %d bytes", c->line, CSV_FIELD_MAX);
                    return -1;
                }
                out[n++] = *c->p++;
            }
        }
        out[n] = '\0';
        if (c->p >= c->end)
            return 1;
        if (*c->p == ',') {
            c->p++;
            continue;
        }
        if (*c->p == '\r')
            c->p++;
        if (c->p < c->end && *c->p == '\n') {
            c->p++;
            c->line++;
            return 1;
        }
        if (c->p >= c->end)
            return 1;
        say(err, errlen, "line %zu: unexpected character after a quoted field", c->line);
        return -1;
    }
}

static bool parse_u32(const char *s, bool empty_ok, uint32_t *out)
{
    while (*s == ' ')
        s++;
    if (*s == '\0') {
        *out = 0;
        return empty_ok;
    }
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX)
            return false;
    }
    while (*s == ' ')
        s++;
    *out = (uint32_t)v;
    return *s == '\0';
}

static int by_id(const void *a, const void *b)
{
    const hk__pg_tree_row *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

static int row(const char *link, bool nodes, size_t line, char f[CSV_FIELDS][CSV_FIELD_MAX + 1], int nf,
               hk__pg_tree_row *r, char *err, size_t errlen)
{
    *r = (hk__pg_tree_row){.line = line};
    if (nf != CSV_FIELDS) {
        say(err, errlen, "line %zu: expected 3 fields (id,%s,name), found %d", line, link, nf);
        return HK_EINVAL;
    }
    if (!parse_u32(f[0], false, &r->id) || r->id == 0) {
        say(err, errlen, "line %zu: id \"%.40s\" is not a positive integer", line, f[0]);
        return HK_EINVAL;
    }
    if (!parse_u32(f[1], nodes, &r->link) || (!nodes && r->link == 0)) {
        say(err, errlen, "line %zu: %s \"%.40s\" is not a %s", line, link, f[1],
            nodes ? "node id (or empty for a root)" : "positive integer");
        return HK_EINVAL;
    }
    size_t len = strlen(f[2]);
    if (len == 0 || len > HK_NODE_NAME_MAX) {
        say(err, errlen, "line %zu: name must be 1..%d bytes", line, HK_NODE_NAME_MAX);
        return HK_EINVAL;
    }
    if (!hk_utf8_valid(f[2], len)) {
        say(err, errlen, "line %zu: name is not valid UTF-8", line);
        return HK_EINVAL;
    }
    r->name = hk_strdup(f[2]);
    return 0;
}

int hk__pg_tree_csv(bool nodes, const char *text, size_t len, hk__pg_tree_row **rows, size_t *nrows, char *err,
                    size_t errlen)
{
    const char *link = nodes ? "parent" : "node";
    struct csv c = {text, text + len, 1, 1};
    char(*f)[CSV_FIELD_MAX + 1] = hk_calloc(CSV_FIELDS, CSV_FIELD_MAX + 1);
    size_t cap = 0;
    int nf, got, rc = 0;
    bool first = true;
    *rows = NULL;
    *nrows = 0;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        c.p += 3;
    while ((got = csv_record(&c, f, &nf, err, errlen)) == 1) {
        if (first && strcasecmp(f[0], "id") == 0) {
            first = false;
            continue;
        }
        first = false;
        if (*nrows == cap)
            *rows = hk_realloc(*rows, (cap = cap ? cap * 2 : 256) * sizeof(**rows));
        if ((rc = row(link, nodes, c.rec_line, f, nf, &(*rows)[*nrows], err, errlen)) != 0)
            break;
        (*nrows)++;
    }
    free(f);
    if (got < 0)
        rc = HK_EINVAL;
    if (rc == 0 && *nrows > 1) {
        hk__pg_tree_row *sorted = hk_calloc(*nrows, sizeof(*sorted));
        memcpy(sorted, *rows, *nrows * sizeof(*sorted));
        qsort(sorted, *nrows, sizeof(*sorted), by_id);
        for (size_t i = 1; i < *nrows && rc == 0; i++)
            if (sorted[i].id == sorted[i - 1].id) {
                say(err, errlen, "line %zu: id %u is already on line %zu", sorted[i].line, sorted[i].id,
                    sorted[i - 1].line);
                rc = HK_EINVAL;
            }
        free(sorted);
    }
    if (rc != 0) {
        hk__pg_tree_rows_free(*rows, *nrows);
        *rows = NULL;
        *nrows = 0;
    }
    return rc;
}

void hk__pg_tree_rows_free(hk__pg_tree_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(rows[i].name);
    free(rows);
}
