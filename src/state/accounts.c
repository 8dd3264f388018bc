/*
 * accounts.c: the node tree and the accounts hanging from it: their tables
 * and codec, the subtree check (is an account inside a user's topmost
 * node's subtree?), their ops (HK_OP_NODE_PUT, HK_OP_ACCOUNT_PUT,
 * HK_OP_TREE_IMPORT) and the CSV import.
 *
 * Records are keyed by big-endian u32 id:
 *   HK_DB_NODES     node id    -> parent P (0: a root) and name
 *   HK_DB_ACCOUNTS  account id -> node N and name
 * Id 0 is never a node or an account (a user's top_node 0 means "none").
 * Every write keeps the tree a tree: a parent must exist, and a node can
 * never become its own ancestor (nor have more than HK_NODE_DEPTH_MAX
 * ancestors).
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tables.h"
#include "utf8.h"

static void say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * Record codec (HK_DB_NODES and HK_DB_ACCOUNTS, id u32 -> record), version
 * 1: u8 version, u32 link (a node's parent, an account's node), string
 * name. Version 0 is the JSON object {"parent"|"node": N, "name": "..."}.
 */
static int decode_rec(const void *data, size_t len, const char *link, uint32_t *link_out, char *name, size_t namelen)
{
    const uint8_t *p = data;
    if (len > 0 && p[0] == HK__V1) {
        char buf[HK_NODE_NAME_MAX + 1];
        hk__rbuf r = hk__rbuf_of(data, len);
        hk__r_u8(&r);
        *link_out = hk__r_u32(&r);
        hk__r_strbuf(&r, buf, sizeof(buf));
        if (!hk__r_done(&r))
            return HK_ESTORE;
        if (name != NULL)
            snprintf(name, namelen, "%s", buf);
        return 0;
    }
    if (len == 0 || p[0] != '{')
        return HK_ESTORE;
    json_t *j = json_loadb(data, len, 0, NULL);
    json_t *l = json_object_get(j, link);
    const char *nm = json_string_value(json_object_get(j, "name"));
    if (!json_is_integer(l) || json_integer_value(l) < 0 || json_integer_value(l) > UINT32_MAX || nm == NULL) {
        json_decref(j);
        return HK_ESTORE;
    }
    *link_out = (uint32_t)json_integer_value(l);
    if (name != NULL)
        snprintf(name, namelen, "%s", nm);
    json_decref(j);
    return 0;
}

/* Reads the record of id in db: its u32 link member (parent or node) and name. */
static int read_rec(hk_txn *txn, enum hk_db db, uint32_t id, const char *link, uint32_t *link_out, char *name,
                    size_t namelen)
{
    uint8_t k[4];
    hk_val v;
    hk_be32(k, id);
    int rc = hk_get(txn, db, k, 4, &v);
    if (rc != 0)
        return rc;
    return decode_rec(v.data, v.len, link, link_out, name, namelen);
}

static int write_rec(hk_txn *txn, enum hk_db db, uint32_t id, const char *link, uint32_t link_val, const char *name)
{
    HK_UNUSED(link);
    hk__wbuf b = {0};
    hk__w_u8(&b, HK__V1);
    hk__w_u32(&b, link_val);
    hk__w_str(&b, name);
    uint8_t k[4];
    hk_be32(k, id);
    int rc = hk_put(txn, db, k, 4, b.p, b.len, 0);
    free(b.p);
    return rc;
}

static int check_name(const char *name, char *err, size_t errlen)
{
    size_t len = strlen(name);
    if (len == 0 || len > HK_NODE_NAME_MAX) {
        say(err, errlen, "name must be 1..%d bytes", HK_NODE_NAME_MAX);
        return HK_EINVAL;
    }
    if (!hk_utf8_valid(name, len)) {
        say(err, errlen, "name is not valid UTF-8");
        return HK_EINVAL;
    }
    return 0;
}

/*
 * Nodes whose chain of ancestors was found good during one import, with
 * how many ancestors each has: a later row's walk stops at the first of
 * them, so an import reads each ancestor once instead of once per row
 * below it (200,000 rows under a deep tree were 2e8 reads in the commit).
 * The rows do not change while they are checked, so a node once good
 * stays good. Open addressing on the node id (0 is never a node: empty).
 */
struct good_nodes {
    uint32_t *id;
    uint16_t *ancestors;
    size_t cap, n; /* cap is a power of two */
};

static size_t good_slot(const struct good_nodes *g, uint32_t id)
{
    size_t i = (id * 2654435761u) & (g->cap - 1);
    while (g->id[i] != 0 && g->id[i] != id)
        i = (i + 1) & (g->cap - 1);
    return i;
}

static bool good_find(const struct good_nodes *g, uint32_t id, unsigned *ancestors)
{
    if (g == NULL || g->cap == 0)
        return false;
    size_t i = good_slot(g, id);
    if (g->id[i] == 0)
        return false;
    *ancestors = g->ancestors[i];
    return true;
}

static void good_add(struct good_nodes *g, uint32_t id, unsigned ancestors)
{
    if (2 * (g->n + 1) > g->cap) {
        struct good_nodes old = *g;
        g->cap = old.cap ? 2 * old.cap : 1024;
        g->id = hk_calloc(g->cap, sizeof(*g->id));
        g->ancestors = hk_calloc(g->cap, sizeof(*g->ancestors));
        g->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.id[i] != 0)
                good_add(g, old.id[i], old.ancestors[i]);
        free(old.id);
        free(old.ancestors);
    }
    size_t i = good_slot(g, id);
    if (g->id[i] == 0)
        g->n++;
    g->id[i] = id;
    g->ancestors[i] = (uint16_t)ancestors;
}

static void good_free(struct good_nodes *g)
{
    free(g->id);
    free(g->ancestors);
    memset(g, 0, sizeof(*g));
}

/*
 * Checks that id's chain of ancestors, starting at parent, ends at a root
 * without passing through id itself and within the depth limit. Every
 * ancestor must exist. good (may be NULL) holds nodes already found good in
 * this import: the walk ends at the first of them, and id and its ancestors
 * join them.
 */
static int check_ancestry(hk_txn *txn, uint32_t id, uint32_t parent, struct good_nodes *good, char *err, size_t errlen)
{
    uint32_t chain[HK_NODE_DEPTH_MAX];
    unsigned above = 0; /* ancestors of the last node of chain, when it is known good */
    int depth = 0;
    uint32_t cur = parent;
    for (; cur != 0; depth++) {
        if (cur == id) {
            say(err, errlen, "node %u cannot be its own ancestor (parent %u)", id, parent);
            return HK_EINVAL;
        }
        if (good_find(good, cur, &above)) {
            /* A good node's chain is acyclic and ends at a root, so it cannot hold id. */
            if (depth + 1 + above > HK_NODE_DEPTH_MAX) {
                say(err, errlen, "node %u would be deeper than %d levels", id, HK_NODE_DEPTH_MAX);
                return HK_EINVAL;
            }
            chain[depth++] = cur;
            break;
        }
        if (depth >= HK_NODE_DEPTH_MAX) {
            say(err, errlen, "node %u would be deeper than %d levels", id, HK_NODE_DEPTH_MAX);
            return HK_EINVAL;
        }
        uint32_t up;
        int rc = read_rec(txn, HK_DB_NODES, cur, "parent", &up, NULL, 0);
        if (rc == HK_ENOTFOUND) {
            say(err, errlen, "node %u does not exist", cur);
            return HK_EINVAL;
        }
        if (rc != 0)
            return rc;
        chain[depth] = cur;
        cur = up;
        above = 0;
    }
    if (good != NULL) {
        /* chain[depth - 1] has `above` ancestors (0 at a root), each one below it one more. */
        for (int i = depth - 1; i >= 0; i--)
            good_add(good, chain[i], above + (unsigned)(depth - 1 - i));
        good_add(good, id, above + (unsigned)depth);
    }
    return 0;
}

/*
 * Creates or replaces node n. HK_EINVAL with a message in err when the id
 * is 0, the name is empty or too long, the parent does not exist, or the
 * new parent would make n its own ancestor (or the chain too deep).
 */
static int node_put(hk_txn *txn, const hk_node *n, char *err, size_t errlen)
{
    if (n->id == 0) {
        say(err, errlen, "node id must be a positive integer");
        return HK_EINVAL;
    }
    int rc = check_name(n->name, err, errlen);
    if (rc == 0)
        rc = check_ancestry(txn, n->id, n->parent, NULL, err, errlen);
    if (rc == 0)
        rc = write_rec(txn, HK_DB_NODES, n->id, "parent", n->parent, n->name);
    return rc;
}

/* Creates or replaces account a. HK_EINVAL with a message in err when the id is 0, the name bad or the node missing. */
static int account_put(hk_txn *txn, const hk_account *a, char *err, size_t errlen)
{
    if (a->id == 0) {
        say(err, errlen, "account id must be a positive integer");
        return HK_EINVAL;
    }
    int rc = check_name(a->name, err, errlen);
    if (rc != 0)
        return rc;
    uint32_t up;
    rc = a->node == 0 ? HK_ENOTFOUND : read_rec(txn, HK_DB_NODES, a->node, "parent", &up, NULL, 0);
    if (rc == HK_ENOTFOUND) {
        say(err, errlen, "node %u does not exist", a->node);
        return HK_EINVAL;
    }
    if (rc != 0)
        return rc;
    return write_rec(txn, HK_DB_ACCOUNTS, a->id, "node", a->node, a->name);
}

/* ---- CSV import ------------------------------------------------------------ */

#define CSV_FIELDS 3
#define CSV_FIELD_MAX HK_NODE_NAME_MAX

struct row {
    uint32_t id, link;
    size_t line;
};

struct csv {
    const char *p, *end;
    size_t line;     /* of the next character */
    size_t rec_line; /* where the last record read began */
};

/*
 * Reads one record into f (nf fields). Returns 1 with a record, 0 at the
 * end, -1 with a message in err.
 */
static int csv_record(struct csv *c, char f[CSV_FIELDS][CSV_FIELD_MAX + 1], int *nf, char *err, size_t errlen)
{
    /* Blank lines are not records. */
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
        bool quoted = c->p < c->end && *c->p == '"';
        if (quoted) {
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

/* Parses a decimal u32 field; empty is allowed (as 0) only when empty_ok. */
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

static int row_cmp(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

/*
 * Imports CSV text (RFC 4180: fields may be double-quoted, "" inside quotes
 * is a quote; CRLF or LF line ends; blank lines skipped; a first line whose
 * first field is "id" is a header): nodes "id,parent,name" (parent empty or
 * 0: a root) or accounts "id,node,name". Rows are stored first and checked
 * after, so a parent or node may come later in the same file. On any error
 * HK_EINVAL with "line N: reason" in err; the op's transaction is then
 * undone, so nothing is kept. *count receives the rows stored.
 */
static int tree_import(hk_txn *txn, bool nodes, const char *text, size_t len, size_t *count, char *err, size_t errlen)
{
    const char *link = nodes ? "parent" : "node";
    enum hk_db db = nodes ? HK_DB_NODES : HK_DB_ACCOUNTS;
    struct csv c = {text, text + len, 1, 1};
    char f[CSV_FIELDS][CSV_FIELD_MAX + 1];
    struct row *rows = NULL;
    size_t n = 0, cap = 0;
    int nf, got, rc = 0;
    bool first = true;
    *count = 0;

    /* Skip a UTF-8 byte order mark, as spreadsheets write one. */
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        c.p += 3;
    while ((got = csv_record(&c, f, &nf, err, errlen)) == 1) {
        size_t line = c.rec_line;
        if (first && strcasecmp(f[0], "id") == 0) {
            first = false;
            continue;
        }
        first = false;
        struct row r = {0, 0, line};
        if (nf != CSV_FIELDS) {
            say(err, errlen, "line %zu: expected 3 fields (id,%s,name), found %d", line, link, nf);
            rc = HK_EINVAL;
            break;
        }
        if (!parse_u32(f[0], false, &r.id) || r.id == 0) {
            say(err, errlen, "line %zu: id \"%.40s\" is not a positive integer", line, f[0]);
            rc = HK_EINVAL;
            break;
        }
        if (!parse_u32(f[1], nodes, &r.link) || (!nodes && r.link == 0)) {
            say(err, errlen, "line %zu: %s \"%.40s\" is not a %s", line, link, f[1],
                nodes ? "node id (or empty for a root)" : "positive integer");
            rc = HK_EINVAL;
            break;
        }
        char why[128];
        if (check_name(f[2], why, sizeof(why)) != 0) {
            say(err, errlen, "line %zu: %s", line, why);
            rc = HK_EINVAL;
            break;
        }
        if ((rc = write_rec(txn, db, r.id, link, r.link, f[2])) != 0) {
            say(err, errlen, "line %zu: %s", line, hk_strerror(rc));
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            rows = hk_realloc(rows, cap * sizeof(*rows));
        }
        rows[n++] = r;
    }
    if (got < 0)
        rc = HK_EINVAL;

    /* A repeated id would silently replace its first row: refuse it. */
    if (rc == 0 && n > 1) {
        struct row *sorted = hk_malloc(n * sizeof(*sorted));
        memcpy(sorted, rows, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), row_cmp);
        for (size_t i = 1; i < n && rc == 0; i++)
            if (sorted[i].id == sorted[i - 1].id) {
                say(err, errlen, "line %zu: id %u is already on line %zu", sorted[i].line, sorted[i].id,
                    sorted[i - 1].line);
                rc = HK_EINVAL;
            }
        free(sorted);
    }

    /* Every row is in; now each reference must resolve and the tree stay a tree. */
    struct good_nodes good = {0};
    for (size_t i = 0; i < n && rc == 0; i++) {
        char why[160];
        if (nodes) {
            rc = check_ancestry(txn, rows[i].id, rows[i].link, &good, why, sizeof(why));
        } else {
            uint32_t up;
            rc = read_rec(txn, HK_DB_NODES, rows[i].link, "parent", &up, NULL, 0);
            if (rc == HK_ENOTFOUND) {
                snprintf(why, sizeof(why), "node %u does not exist", rows[i].link);
                rc = HK_EINVAL;
            } else if (rc != 0) {
                snprintf(why, sizeof(why), "%s", hk_strerror(rc));
            }
        }
        if (rc != 0)
            say(err, errlen, "line %zu: %s", rows[i].line, why);
    }
    good_free(&good);
    free(rows);
    if (rc == 0)
        *count = n;
    return rc;
}

/* ---- typed access and ops ----------------------------------------------------- */

int hk__node_read(hk_txn *txn, uint32_t id, hk_node *out)
{
    memset(out, 0, sizeof(*out));
    out->id = id;
    return read_rec(txn, HK_DB_NODES, id, "parent", &out->parent, out->name, sizeof(out->name));
}

int hk__account_read(hk_txn *txn, uint32_t id, hk_account *out)
{
    memset(out, 0, sizeof(*out));
    out->id = id;
    return read_rec(txn, HK_DB_ACCOUNTS, id, "node", &out->node, out->name, sizeof(out->name));
}

/* Visits every record of db in id order, decoded into link and name. */
static int each_rec(hk_txn *txn, enum hk_db db, const char *link,
                    int (*fn)(uint32_t id, uint32_t link, const char *name, void *arg), void *arg)
{
    hk_cursor *c;
    hk_val k, v;
    int rc = hk_cursor_open(txn, db, &c);
    if (rc != 0)
        return rc;
    int ret = 0;
    for (rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0 && ret == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        uint32_t l;
        char name[HK_NODE_NAME_MAX + 1];
        if (k.len != 4 || decode_rec(v.data, v.len, link, &l, name, sizeof(name)) != 0)
            continue;
        ret = fn(hk_rd32(k.data), l, name, arg);
    }
    hk_cursor_close(c);
    if (ret != 0)
        return ret;
    return rc == HK_ENOTFOUND ? 0 : rc;
}

struct each_node {
    int (*fn)(const hk_node *n, void *arg);
    void *arg;
};

static int one_node(uint32_t id, uint32_t link, const char *name, void *arg)
{
    struct each_node *e = arg;
    hk_node n = {.id = id, .parent = link};
    snprintf(n.name, sizeof(n.name), "%s", name);
    return e->fn(&n, e->arg);
}

int hk__nodes_each(hk_txn *txn, int (*fn)(const hk_node *n, void *arg), void *arg)
{
    struct each_node e = {fn, arg};
    return each_rec(txn, HK_DB_NODES, "parent", one_node, &e);
}

struct each_account {
    int (*fn)(const hk_account *a, void *arg);
    void *arg;
};

static int one_account(uint32_t id, uint32_t link, const char *name, void *arg)
{
    struct each_account *e = arg;
    hk_account a = {.id = id, .node = link};
    snprintf(a.name, sizeof(a.name), "%s", name);
    return e->fn(&a, e->arg);
}

int hk__accounts_each(hk_txn *txn, int (*fn)(const hk_account *a, void *arg), void *arg)
{
    struct each_account e = {fn, arg};
    return each_rec(txn, HK_DB_ACCOUNTS, "node", one_account, &e);
}

int hk__node_within(hk_txn *txn, uint32_t node, uint32_t top, bool *within)
{
    *within = top == 0;
    if (top == 0)
        return 0;
    uint32_t cur = node;
    /* The depth bound also ends a cycle, which only a damaged store could hold. */
    for (int depth = 0; cur != 0 && depth <= HK_NODE_DEPTH_MAX; depth++) {
        if (cur == top) {
            *within = true;
            return 0;
        }
        uint32_t up;
        int rc = read_rec(txn, HK_DB_NODES, cur, "parent", &up, NULL, 0);
        if (rc == HK_ENOTFOUND)
            return 0;
        if (rc != 0)
            return rc;
        cur = up;
    }
    return 0;
}

int hk__apply_node_put(hk_txn *txn, hk_op *op)
{
    hk_op_node_put *p = &op->u.node_put;
    p->err[0] = '\0';
    return node_put(txn, &p->node, p->err, sizeof(p->err));
}

int hk__apply_account_put(hk_txn *txn, hk_op *op)
{
    hk_op_account_put *p = &op->u.account_put;
    p->err[0] = '\0';
    return account_put(txn, &p->account, p->err, sizeof(p->err));
}

int hk__apply_tree_import(hk_txn *txn, hk_op *op)
{
    hk_op_tree_import *p = &op->u.tree_import;
    p->err[0] = '\0';
    p->count = 0;
    return tree_import(txn, !p->accounts, p->text ? p->text : "", p->len, &p->count, p->err, sizeof(p->err));
}
