/*
 * api_nodes.c: the admin endpoints that keep the tree of nodes and
 * accounts (the scope of the custom account action). Bodies are validated
 * on the loop; the record is stored in the group commit.
 *
 *   PUT /api/v3/admin/node/{nodeId}        Manage  200 {nodeId, name, parentId}
 *   PUT /api/v3/admin/account/{accountId}  Manage  200 {accountId, name, nodeId}
 */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "store.h"

/* Reads a positive int32 member; *present tells whether it was there (not null). */
static bool int_member(const json_t *obj, const char *name, uint32_t *out, bool *present)
{
    json_t *v = hk_json_member_ci(obj, name);
    *present = v != NULL && !json_is_null(v);
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > INT32_MAX)
        return false;
    *out = (uint32_t)json_integer_value(v);
    return true;
}

struct tree_write {
    hk_commit c; /* HK_OP_NODE_PUT or HK_OP_ACCOUNT_PUT */
    hk_ctx *ctx;
};

static void tree_done(hk_commit *c, int status)
{
    struct tree_write *tw = hk_container_of(c, struct tree_write, c);
    hk_ctx *ctx = tw->ctx;
    bool is_node = c->op.type == HK_OP_NODE_PUT;
    hk_api_note_commit(ctx->app, status);
    if (status == HK_EINVAL) {
        hk_respond_field_error(ctx, 400, is_node ? "parentId" : "nodeId", "%s",
                               is_node ? c->op.u.node_put.err : c->op.u.account_put.err);
    } else if (status != 0) {
        hk_respond_store_error(ctx, status);
    } else if (is_node) {
        const hk_node *n = &c->op.u.node_put.node;
        json_t *parent = n->parent ? json_integer(n->parent) : json_null();
        hk_respond_json(ctx, 200,
                        json_pack("{s:I, s:s, s:o}", "nodeId", (json_int_t)n->id, "name", n->name, "parentId", parent));
    } else {
        const hk_account *a = &c->op.u.account_put.account;
        hk_respond_json(ctx, 200,
                        json_pack("{s:I, s:s, s:I}", "accountId", (json_int_t)a->id, "name", a->name, "nodeId",
                                  (json_int_t)a->node));
    }
    free(tw);
}

/* PUT node or account: validates the body on the loop, stores in the group commit. */
static void tree_put(hk_ctx *ctx, bool is_node)
{
    const char *pname = is_node ? "nodeId" : "accountId";
    uint64_t id;
    if (hk_param_id(ctx, pname, INT32_MAX, &id) != 0) {
        hk_respond_error(ctx, 400, "%s must be a positive integer", pname);
        return;
    }
    char err[256];
    json_t *body = hk_body_json(ctx, err, sizeof(err), NULL);
    if (body == NULL || !json_is_object(body)) {
        json_decref(body);
        hk_respond_error(ctx, 400, "%s", body ? "the body must be an object" : err);
        return;
    }
    const char *name = json_string_value(hk_json_member_ci(body, "name"));
    if (name == NULL || name[0] == '\0' || strlen(name) > HK_NODE_NAME_MAX) {
        json_decref(body);
        hk_respond_field_error(ctx, 400, "name", "name is required: a string of 1..%d bytes", HK_NODE_NAME_MAX);
        return;
    }
    struct tree_write *tw = hk_calloc(1, sizeof(*tw));
    tw->ctx = ctx;
    uint32_t link = 0;
    bool present;
    const char *lname = is_node ? "parentId" : "nodeId";
    if (!int_member(body, lname, &link, &present) && (present || !is_node)) {
        json_decref(body);
        free(tw);
        hk_respond_field_error(
            ctx, 400, lname, is_node ? "parentId must be a node id or null (a root)" : "nodeId is required: a node id");
        return;
    }
    hk_op *op = &tw->c.op;
    op->now_ms = hk_now_ms();
    if (is_node) {
        op->type = HK_OP_NODE_PUT;
        op->u.node_put.node.id = (uint32_t)id;
        op->u.node_put.node.parent = link;
        snprintf(op->u.node_put.node.name, sizeof(op->u.node_put.node.name), "%s", name);
    } else {
        op->type = HK_OP_ACCOUNT_PUT;
        op->u.account_put.account.id = (uint32_t)id;
        op->u.account_put.account.node = link;
        snprintf(op->u.account_put.account.name, sizeof(op->u.account_put.account.name), "%s", name);
    }
    json_decref(body);
    tw->c.done = tree_done;
    hk_store_submit(ctx->app->db, &tw->c);
}

static void node_put(hk_ctx *ctx)
{
    tree_put(ctx, true);
}

static void account_put(hk_ctx *ctx)
{
    tree_put(ctx, false);
}

const hk_api_route hk_nodes_routes[] = {
    {"PUT", "/api/v3/admin/node/{nodeId}", node_put, HK_PERM_MANAGE},
    {"PUT", "/api/v3/admin/account/{accountId}", account_put, HK_PERM_MANAGE},
};
const size_t hk_nodes_routes_count = HK_ARRAY_SIZE(hk_nodes_routes);
