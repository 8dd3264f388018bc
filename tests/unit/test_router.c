/* Unit tests of the router: literals over parameters, case rules, 404/405. */
#include "router.h"
#include "unit.h"

static int a, b, c, d, e;

int main(void)
{
    hk_router *r = hk_router_new();
    hk_router_add(r, "GET", "/api/v1/Webhook", HK_ROUTE_NOCASE, &a);
    hk_router_add(r, "GET", "/api/v1/Webhook/{id}", HK_ROUTE_NOCASE, &b);
    hk_router_add(r, "GET", "/api/v1/Webhook/default", HK_ROUTE_NOCASE, &c);
    hk_router_add(r, "POST", "/api/v1/Webhook/{eventName}/{primaryKey}", HK_ROUTE_NOCASE, &d);
    hk_router_add(r, "GET", "/api/v3/webhook/{webhookId}", 0, &e);
    hk_router_add(r, "DELETE", "/api/v3/webhook/{webhookId}", 0, &e);

    const void *data;
    hk_route_params p;
    char allow[64];
    CHECK_INT(hk_router_match(r, "GET", "/api/v1/Webhook", 15, &data, &p, allow, sizeof(allow)), 0);
    CHECK(data == &a);
    CHECK_INT(hk_router_match(r, "GET", "/API/V1/webhook/", 16, &data, &p, allow, sizeof(allow)), 0);
    CHECK(data == &a);

    /* A literal segment wins over a parameter. */
    CHECK_INT(hk_router_match(r, "GET", "/api/v1/webhook/Default", 23, &data, &p, allow, sizeof(allow)), 0);
    CHECK(data == &c);
    CHECK_INT(p.n, 0);

    CHECK_INT(hk_router_match(r, "GET", "/api/v1/Webhook/42", 18, &data, &p, allow, sizeof(allow)), 0);
    CHECK(data == &b);
    CHECK_STR(hk_route_param(&p, "id"), "42");
    hk_route_params_free(&p);

    const char *sig = "/api/v1/Webhook/contact.created/7";
    CHECK_INT(hk_router_match(r, "POST", sig, strlen(sig), &data, &p, allow, sizeof(allow)), 0);
    CHECK_STR(hk_route_param(&p, "eventName"), "contact.created");
    CHECK_STR(hk_route_param(&p, "primaryKey"), "7");
    hk_route_params_free(&p);

    /* Percent-decoding of parameters; an encoded NUL is refused. */
    CHECK_INT(hk_router_match(r, "GET", "/api/v1/Webhook/a%20b", 21, &data, &p, allow, sizeof(allow)), 0);
    CHECK_STR(hk_route_param(&p, "id"), "a b");
    hk_route_params_free(&p);
    CHECK_INT(hk_router_match(r, "GET", "/api/v1/Webhook/a%00b", 21, &data, &p, allow, sizeof(allow)), 404);
    CHECK_INT(hk_router_match(r, "GET", "/api/v1/Webhook/a%zz", 20, &data, &p, allow, sizeof(allow)), 404);

    /* EnergyCAP paths are case-sensitive. */
    CHECK_INT(hk_router_match(r, "GET", "/api/v3/Webhook/1", 17, &data, &p, allow, sizeof(allow)), 404);
    CHECK_INT(hk_router_match(r, "GET", "/api/v3/webhook/1", 17, &data, &p, allow, sizeof(allow)), 0);
    hk_route_params_free(&p);

    /* Wrong method: 405 with the allowed ones. */
    CHECK_INT(hk_router_match(r, "PATCH", "/api/v3/webhook/1", 17, &data, &p, allow, sizeof(allow)), 405);
    CHECK_STR(allow, "GET, DELETE");
    CHECK_INT(hk_router_match(r, "GET", "/nope", 5, &data, &p, allow, sizeof(allow)), 404);

    char *dec = hk_percent_decode("a+b%2Fc", 7, 1);
    CHECK_STR(dec, "a b/c");
    free(dec);
    CHECK(hk_percent_decode("%4", 2, 0) == NULL);

    hk_router_free(r);
    return unit_done();
}
