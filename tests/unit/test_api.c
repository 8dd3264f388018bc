/* Unit tests of the shared API helpers: dialects by path, error bodies,
 * readiness from commit results, parameters, case-insensitive members. */
#include <jansson.h>
#include <string.h>

#include "api.h"
#include "unit.h"

static enum hk_dialect dialect(const char *path)
{
    return hk_api_dialect(path, strlen(path));
}

static void test_dialects(void)
{
    CHECK_INT(dialect("/api/v1/Webhook"), HK_DIALECT_SO);
    CHECK_INT(dialect("/API/V1/webhook"), HK_DIALECT_SO);
    CHECK_INT(dialect("/api/v1"), HK_DIALECT_SO);
    CHECK_INT(dialect("/api/v10/x"), HK_DIALECT_PLAIN);
    CHECK_INT(dialect("/api/v3/webhook"), HK_DIALECT_ECAP);
    CHECK_INT(dialect("/api/v3/Webhook"), HK_DIALECT_ECAP);
    CHECK_INT(dialect("/API/V3/WEBHOOK"), HK_DIALECT_ECAP);
    CHECK_INT(dialect("/api/v3"), HK_DIALECT_ECAP);
    CHECK_INT(dialect("/api/v30/x"), HK_DIALECT_PLAIN);
    CHECK_INT(dialect("/api/v202211/account/customAction"), HK_DIALECT_ECAP);
    CHECK_INT(dialect("/API/V202211/Account"), HK_DIALECT_ECAP);
    CHECK_INT(dialect("/api/rest/Webhook"), HK_DIALECT_IVANTI);
    CHECK_INT(dialect("/API/REST"), HK_DIALECT_IVANTI);
    CHECK_INT(dialect("/api/restx"), HK_DIALECT_PLAIN);
    CHECK_INT(dialect("/healthz"), HK_DIALECT_PLAIN);
    CHECK_INT(dialect(""), HK_DIALECT_PLAIN);
}

static void test_error_bodies(void)
{
    char *b = hk_api_error_body("/API/V3/x", 9, 404, "gone");
    CHECK_STR(b, "{\"status\":404,\"title\":\"Not Found\",\"message\":\"gone\"}");
    free(b);
    b = hk_api_error_body("/api/V1/x", 9, 400, "bad");
    CHECK_STR(b, "{\"Error\":\"bad\",\"ErrorType\":\"BadRequest\",\"Message\":\"bad\"}");
    free(b);
    b = hk_api_error_body("/Api/Rest/x", 11, 401, "who");
    CHECK(strstr(b, "ISM_4001") != NULL);
    free(b);
    b = hk_api_error_body(NULL, 0, 431, "too big");
    CHECK_STR(b, "{\"error\":\"too big\"}");
    free(b);
}

static void test_readiness(void)
{
    hk_api_env env = {0};
    CHECK(!env.store_failing);
    /* Refused ops say nothing about the store. */
    hk_api_note_commit(&env, HK_ENOTFOUND);
    hk_api_note_commit(&env, HK_ELOCKED);
    hk_api_note_commit(&env, HK_EEXIST);
    hk_api_note_commit(&env, HK_EINVAL);
    hk_api_note_commit(&env, HK_ESHUTDOWN);
    CHECK(!env.store_failing);
    hk_api_note_commit(&env, HK_EFULL);
    CHECK(env.store_failing);
    /* Still failing after a refused op; well again after a success. */
    hk_api_note_commit(&env, HK_ENOTFOUND);
    CHECK(env.store_failing);
    hk_api_note_commit(&env, 0);
    CHECK(!env.store_failing);
    hk_api_note_commit(&env, HK_ESTORE);
    CHECK(env.store_failing);
    hk_api_note_commit(&env, 0);
    hk_api_note_commit(&env, UV_ENOSPC);
    CHECK(env.store_failing);
    hk_api_note_commit(&env, 0);
    hk_api_note_commit(&env, UV_EIO);
    CHECK(env.store_failing);
    hk_api_note_commit(NULL, HK_EFULL); /* the CLI has no env */
    CHECK(hk_api_store_failure(HK_EFULL) && hk_api_store_failure(HK_ESTORE));
    CHECK(!hk_api_store_failure(0) && !hk_api_store_failure(HK_ECONFLICT));
}

static void test_params(void)
{
    hk_http_request req = {0};
    hk_ctx ctx = {0};
    ctx.req = &req;
    req.query = "pageSize=25&PAGENUMBER=3&bad=x1&neg=-4&big=99999999999999999999&empty=&filter=a%20b+c&broken=%zz";
    long n;
    CHECK_INT(hk_query_long(&ctx, "pagesize", 100, 1, 1000, &n), 0);
    CHECK_INT(n, 25);
    CHECK_INT(hk_query_long(&ctx, "pageNumber", 1, 1, 1000, &n), 0);
    CHECK_INT(n, 3);
    CHECK_INT(hk_query_long(&ctx, "absent", 7, 1, 1000, &n), 0);
    CHECK_INT(n, 7);
    n = 5;
    CHECK_INT(hk_query_long(&ctx, "bad", 1, 1, 1000, &n), HK_EINVAL);
    CHECK_INT(n, 5);
    CHECK_INT(hk_query_long(&ctx, "neg", 1, 1, 1000, &n), HK_EINVAL);
    CHECK_INT(hk_query_long(&ctx, "neg", 1, -10, 1000, &n), 0);
    CHECK_INT(n, -4);
    CHECK_INT(hk_query_long(&ctx, "big", 1, 1, 1000, &n), HK_EINVAL);
    CHECK_INT(hk_query_long(&ctx, "empty", 1, 1, 1000, &n), HK_EINVAL);
    CHECK_INT(hk_query_long(&ctx, "pageSize", 1, 1, 10, &n), HK_EINVAL);
    char *v = hk_query_get(&ctx, "FILTER");
    CHECK_STR(v, "a b c");
    free(v);
    CHECK(hk_query_get(&ctx, "broken") == NULL);
    v = hk_query_get(&ctx, "empty");
    CHECK_STR(v, "");
    free(v);

    const char *names[HK_ROUTE_MAX_PARAMS] = {"id", "zero", "junk", "huge"};
    char *values[HK_ROUTE_MAX_PARAMS] = {"42", "0", "4x", "4294967296"};
    ctx.params.n = HK_ROUTE_MAX_PARAMS;
    for (int i = 0; i < HK_ROUTE_MAX_PARAMS; i++) {
        ctx.params.names[i] = names[i];
        ctx.params.values[i] = values[i];
    }
    uint64_t id = 0;
    CHECK_INT(hk_param_id(&ctx, "id", UINT32_MAX, &id), 0);
    CHECK_INT(id, 42);
    CHECK_INT(hk_param_id(&ctx, "zero", UINT32_MAX, &id), HK_EINVAL);
    CHECK_INT(hk_param_id(&ctx, "junk", UINT32_MAX, &id), HK_EINVAL);
    CHECK_INT(hk_param_id(&ctx, "huge", UINT32_MAX, &id), HK_EINVAL);
    CHECK_INT(hk_param_id(&ctx, "huge", UINT64_MAX, &id), 0);
    CHECK_INT(id, 4294967296ll);
    values[2] = "+5";
    ctx.params.values[2] = values[2];
    CHECK_INT(hk_param_id(&ctx, "junk", UINT32_MAX, &id), HK_EINVAL);
    values[2] = "";
    ctx.params.values[2] = values[2];
    CHECK_INT(hk_param_id(&ctx, "junk", UINT32_MAX, &id), HK_EINVAL);
    CHECK_INT(hk_param_id(&ctx, "absent", UINT32_MAX, &id), HK_EINVAL);
}

static void test_member_ci(void)
{
    json_t *o = json_pack("{s:i, s:i, s:i, s:i}", "EventName", 1, "primaryKey", 2, "DATA", 3, "data", 4);
    CHECK_INT(json_integer_value(hk_json_member_ci(o, "eventName")), 1);
    CHECK_INT(json_integer_value(hk_json_member_ci(o, "EVENTNAME")), 1);
    CHECK_INT(json_integer_value(hk_json_member_ci(o, "PrimaryKey")), 2);
    /* An exact match wins over one differing in case. */
    CHECK_INT(json_integer_value(hk_json_member_ci(o, "data")), 4);
    CHECK_INT(json_integer_value(hk_json_member_ci(o, "DATA")), 3);
    CHECK_INT(json_integer_value(hk_json_member_ci(o, "Data")), 3); /* the first in document order */
    CHECK(hk_json_member_ci(o, "Changes") == NULL);
    CHECK(hk_json_member_ci(o, "EventNam") == NULL);
    json_t *a = json_array();
    CHECK(hk_json_member_ci(a, "x") == NULL);
    CHECK(hk_json_member_ci(NULL, "x") == NULL);
    json_decref(a);
    json_decref(o);
}

int main(void)
{
    test_dialects();
    test_error_bodies();
    test_readiness();
    test_params();
    test_member_ci();
    return unit_done();
}
