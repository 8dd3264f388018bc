/* Unit tests of the EnergyCAP filter grammar: every form the webhook list and
 * the attempt log accepted, the union's additions, and the errors. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "filter.h"
#include "unit.h"

/* ---- records ------------------------------------------------------------------ */

static char *ev_a[] = {"contact.created", "sale.changed"};
static char *ev_b[] = {"sale.changed"};
static char *ev_c[] = {"person.deleted"};

static hk_webhook wh[3] = {
    {.id = 1,
     .name = "Orders Alpha",
     .description = "first",
     .url = "http://a.example.com/x",
     .state = HK_WH_ACTIVE,
     .events = ev_a,
     .nevents = 2,
     .extension = NULL},
    {.id = 2,
     .name = "orders beta",
     .description = "",
     .url = "http://a.example.com/y",
     .state = HK_WH_STOPPED,
     .events = ev_b,
     .nevents = 1,
     .locked = true,
     .extension = "Ext-B"},
    {.id = 3,
     .name = "Gamma",
     .description = "it's \"quoted\"",
     .url = "http://other.example.net/x",
     .state = HK_WH_TOO_MANY_ERRORS,
     .events = ev_c,
     .nevents = 1,
     .extension = NULL},
};

/* Event type ids as the store would number them. */
static int type_id(void *arg, const char *name, uint32_t *id)
{
    int *calls = arg;
    (*calls)++;
    if (strcmp(name, "contact.created") == 0)
        *id = 10;
    else if (strcmp(name, "sale.changed") == 0)
        *id = 11;
    else if (strcmp(name, "person.deleted") == 0)
        *id = 12;
    else
        return HK_ENOTFOUND;
    return 0;
}

/* The ids of the webhooks that match expr as a digit string ("13"), or "error". */
static const char *webhooks(const char *expr)
{
    static char out[16];
    hk_filter *f;
    char err[HK_FILTER_ERR_MAX];
    if (hk_filter_parse(expr, hk_filter_webhook_fields, &f, err) != 0) {
        CHECK(f == NULL);
        CHECK(strncmp(err, "filter: ", 8) == 0);
        return "error";
    }
    int calls = 0;
    size_t o = 0;
    for (size_t i = 0; i < HK_ARRAY_SIZE(wh); i++) {
        hk_filter_webhook rec = {&wh[i], type_id, &calls};
        if (hk_filter_match(f, &rec))
            out[o++] = (char)('0' + wh[i].id);
    }
    out[o] = '\0';
    hk_filter_free(f);
    return out;
}

/* 2026-11-22T10:00:00.000Z and friends. */
#define DAY 1795341600000ull /* 2026-11-22T10:00:00Z */

static hk_attempt at[] = {
    {.id = 1, .status = 200, .started_ms = DAY - 36000000ull},         /* 2026-11-22T00:00:00.000Z */
    {.id = 2, .status = 404, .started_ms = DAY},                       /* 10:00:00.000 */
    {.id = 3, .status = 500, .started_ms = DAY + 250},                 /* 10:00:00.250 */
    {.id = 4, .status = 0, .started_ms = DAY + 1000},                  /* 10:00:01.000 */
    {.id = 5, .status = 201, .started_ms = DAY + 14 * 3600000ull - 1}, /* 23:59:59.999 */
    {.id = 6, .status = 200, .started_ms = DAY + 14 * 3600000ull},     /* 2026-11-23T00:00:00.000Z */
};

static const char *attempts(const char *expr)
{
    static char out[16];
    hk_filter *f;
    char err[HK_FILTER_ERR_MAX];
    if (hk_filter_parse(expr, hk_filter_attempt_fields, &f, err) != 0)
        return "error";
    size_t o = 0;
    for (size_t i = 0; i < HK_ARRAY_SIZE(at); i++)
        if (hk_filter_match(f, &at[i]))
            out[o++] = (char)('0' + at[i].id);
    out[o] = '\0';
    hk_filter_free(f);
    return out;
}

/* The error message of a filter that must not parse. */
static const char *error_of(const char *expr, const hk_filter_field *fields)
{
    static char err[HK_FILTER_ERR_MAX];
    hk_filter *f = (hk_filter *)1;
    int rc = hk_filter_parse(expr, fields, &f, err);
    CHECK_INT(rc, HK_EINVAL);
    CHECK(f == NULL);
    return err;
}

#define CHECK_ERR(expr, fields, needle)                                                                                \
    do {                                                                                                               \
        const char *e_ = error_of(expr, fields);                                                                       \
        unit_checks++;                                                                                                 \
        if (strstr(e_, needle) == NULL) {                                                                              \
            unit_failures++;                                                                                           \
            fprintf(stderr, "%s:%d: error of '%s' is \"%s\", lacking \"%s\"\n", __FILE__, __LINE__, expr, e_, needle); \
        }                                                                                                              \
    } while (0)

/* ---- the webhook list ------------------------------------------------------------ */

static void test_webhook_forms(void)
{
    /* Everything the old webhook-list parser accepted. */
    CHECK_STR(webhooks(""), "123");
    CHECK_STR(webhooks("   "), "123");
    CHECK_STR(webhooks("webhookName equals \"Gamma\""), "3");
    CHECK_STR(webhooks("webhookName equals 'orders beta'"), "2");
    CHECK_STR(webhooks("webhookName equals gamma"), "3"); /* text compares without case */
    CHECK_STR(webhooks("webhookName not equals \"Gamma\""), "12");
    CHECK_STR(webhooks("webhookName like \"orders\""), "12");
    CHECK_STR(webhooks("webhookName like \"%beta\""), "2");
    CHECK_STR(webhooks("webhookName like \"o_ders%\""), "12");
    CHECK_STR(webhooks("webhookName like \"O_DERS\""), ""); /* a pattern matches the whole text */
    CHECK_STR(webhooks("webhookName not like \"orders\""), "3");
    CHECK_STR(webhooks("url like \"other.example\""), "3");
    CHECK_STR(webhooks("webhookEventTypeId equals 11"), "12");
    CHECK_STR(webhooks("webhookEventTypeId equals 12"), "3");
    CHECK_STR(webhooks("webhookEventTypeId one of 10|12"), "13");
    CHECK_STR(webhooks("webhookEventTypeId one of 10 | 12"), "13");
    CHECK_STR(webhooks("webhookEventTypeId not equals 11"), "3"); /* none of its events is 11 */
    CHECK_STR(webhooks("webhookEventTypeName equals sale.changed"), "12");
    CHECK_STR(webhooks("webhookEventTypeName like created"), "1");
    CHECK_STR(webhooks("webhookStatus equals Stopped"), "2");
    CHECK_STR(webhooks("webhookStatus one of \"Active\",\"Stopped\""), "12");
    CHECK_STR(webhooks("webhookStatus not equals Active"), "23");
    CHECK_STR(webhooks("webhookStatus equals toomanyerrors"), "3");
    CHECK_STR(webhooks("webhookName like \"orders\" and webhookStatus equals \"Active\""), "1");
    CHECK_STR(webhooks("webhookId one of 1|3"), "13");
    CHECK_STR(webhooks("webhookId equals 002"), "2");
    CHECK_STR(webhooks("webhookId like 2"), "2");
    CHECK_STR(webhooks("active equals false"), "23");
    CHECK_STR(webhooks("active equals 1"), "1");
    CHECK_STR(webhooks("locked equals TRUE"), "2");
    CHECK_STR(webhooks("locked like true"), "2");
    CHECK_STR(webhooks("extension equals ext-b"), "2");
    CHECK_STR(webhooks("extension equals ''"), "13");
    CHECK_STR(webhooks("webhookDescription equals \"\""), "2");
    CHECK_STR(webhooks("webhookId eq 1"), "1");
    CHECK_STR(webhooks("webhookId ne 1"), "23");
    CHECK_STR(webhooks("webhookId in 1,2"), "12");
    CHECK_STR(webhooks("webhookStatus not one of Active|Stopped"), "3");
    CHECK_STR(webhooks("webhookName not one of 'Gamma', \"orders beta\""), "1");
    /* Keywords and field names in any case; white space of any kind and amount. */
    CHECK_STR(webhooks("WEBHOOKNAME Not   Equals\t'Gamma'  AND  ACTIVE eQuAlS TRUE"), "1");
    CHECK_STR(webhooks("\twebhookId\nequals\r\n3\n"), "3");
    /* A value may follow its operator without a blank when quoted. */
    CHECK_STR(webhooks("webhookName equals'Gamma'"), "3");
    /* Quotes inside quoted values: doubled, or after a backslash. */
    CHECK_STR(webhooks("webhookDescription equals 'it''s \"quoted\"'"), "3");
    CHECK_STR(webhooks("webhookDescription equals \"it's \\\"quoted\\\"\""), "3");
    CHECK_STR(webhooks("webhookDescription like 'it\\'s'"), "3");
    /* A bare value keeps , and | outside a list. */
    CHECK_STR(webhooks("webhookName equals a,b"), "");
    /* The union's additions: ordering on integers. */
    CHECK_STR(webhooks("webhookId greater than 1"), "23");
    CHECK_STR(webhooks("webhookId less than or equal 2"), "12");
    CHECK_STR(webhooks("webhookId between 2 and 3"), "23");
    CHECK_STR(webhooks("webhookEventTypeId greater than or equal 12"), "3");
}

static void test_webhook_event_ids(void)
{
    /* Without a lookup, webhookEventTypeId matches no event. */
    hk_filter *f;
    char err[HK_FILTER_ERR_MAX];
    CHECK_INT(hk_filter_parse("webhookEventTypeId equals 11", hk_filter_webhook_fields, &f, err), 0);
    hk_filter_webhook rec = {&wh[0], NULL, NULL};
    CHECK(!hk_filter_match(f, &rec));
    hk_filter_free(f);
    /* An event the lookup does not know is skipped. */
    static char *unknown[] = {"never.seen", "sale.changed"};
    hk_webhook w = wh[0];
    w.events = unknown;
    int calls = 0;
    rec = (hk_filter_webhook){&w, type_id, &calls};
    CHECK_INT(hk_filter_parse("webhookEventTypeId one of 11", hk_filter_webhook_fields, &f, err), 0);
    CHECK(hk_filter_match(f, &rec));
    CHECK_INT(calls, 2);
    hk_filter_free(f);
    /* The first matching event ends the walk. */
    calls = 0;
    w.events = ev_a;
    CHECK_INT(hk_filter_parse("webhookEventTypeId equals 10", hk_filter_webhook_fields, &f, err), 0);
    CHECK(hk_filter_match(f, &rec));
    CHECK_INT(calls, 1);
    CHECK_INT(hk_filter_conditions(f), 1);
    hk_filter_free(f);
    /* NULL filter and blank filter match everything. */
    CHECK(hk_filter_match(NULL, &rec));
    CHECK_INT(hk_filter_conditions(NULL), 0);
    CHECK_INT(hk_filter_parse(" ", hk_filter_webhook_fields, &f, err), 0);
    CHECK_INT(hk_filter_conditions(f), 0);
    CHECK(hk_filter_match(f, &rec));
    hk_filter_free(f);
    hk_filter_free(NULL);
}

static void test_webhook_errors(void)
{
    const hk_filter_field *W = hk_filter_webhook_fields;
    /* The cases the webhook list refuses today. */
    CHECK_ERR("nosuchfield equals 1", W, "unknown field \"nosuchfield\"");
    CHECK_ERR("nosuchfield equals 1", W, "webhookName");
    CHECK_ERR("webhookName frobs 1", W, "unknown operator \"frobs\" after webhookName");
    CHECK_ERR("webhookName equals \"open", W, "no closing \"");
    CHECK_ERR("webhookName equals 'open", W, "no closing '");
    CHECK_ERR("webhookEventTypeId equals abc", W, "webhookEventTypeId needs an integer, not \"abc\"");
    CHECK_ERR("webhookId equals 99999999999999999999", W, "needs an integer");
    CHECK_ERR("webhookId equals 1.5", W, "needs an integer");
    CHECK_ERR("webhookName equals x or webhookId equals 1", W, "expected \"and\", found \"or\"");
    CHECK_ERR("webhookName equals x and", W, "a condition must follow \"and\"");
    CHECK_ERR("webhookName equals x and   ", W, "a condition must follow \"and\"");
    CHECK_ERR("active equals yes", W, "active needs true or false, not \"yes\"");
    CHECK_ERR("webhookName", W, "expected an operator after webhookName at the end");
    CHECK_ERR("webhookName equals", W, "expected a value at the end");
    CHECK_ERR("webhookName equals ", W, "expected a value at the end");
    CHECK_ERR("webhookId one of 1|", W, "expected a value at the end");
    CHECK_ERR("webhookId one of 1,,2", W, "expected a value, found \",2\"");
    CHECK_ERR("equals 1", W, "unknown field \"equals\"");
    CHECK_ERR("'webhookName' equals 1", W, "unknown field \"'webhookName'\"");
    CHECK_ERR("webhookNameequals 1", W, "unknown field \"webhookNameequals\"");
    CHECK_ERR("webhookName greater than a", W, "operator \"greater than\" does not apply to webhookName");
    CHECK_ERR("active between 0 and 1", W, "does not apply to active");
    CHECK_ERR("webhookName not frob x", W, "unknown operator \"not\"");
    CHECK_ERR("webhookId between 1 or 2", W, "expected \"and\" between the two values of between, found \"or\"");
    CHECK_ERR("webhookId between 1", W, "expected \"and\" between the two values of between at the end");
    CHECK_ERR("webhookId equals 1 2", W, "expected \"and\", found \"2\"");
    /* Limits. */
    CHECK_ERR("webhookId equals 1 and webhookId equals 1 and webhookId equals 1 and webhookId equals 1 and "
              "webhookId equals 1 and webhookId equals 1 and webhookId equals 1 and webhookId equals 1 and "
              "webhookId equals 1",
              W, "at most 8 conditions");
    char list[400] = "webhookId one of 0";
    for (int i = 1; i < 33; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "|%d", i);
    CHECK_ERR(list, W, "at most 32 values");
    *strrchr(list, '|') = '\0'; /* 32 values are fine */
    CHECK_STR(webhooks(list), "123");
}

/* ---- the attempt log ------------------------------------------------------------------ */

static void test_attempt_forms(void)
{
    /* Everything the old attempt-log parser accepted (but a trailing "and"). */
    CHECK_STR(attempts("result equals '500'"), "3");
    CHECK_STR(attempts("result equals \"500\""), "3");
    CHECK_STR(attempts("result equals 404"), "2");
    CHECK_STR(attempts("result equals 0"), "4");
    CHECK_STR(attempts("result not equals '200'"), "2345");
    CHECK_STR(attempts("result one of '404','500'"), "23");
    CHECK_STR(attempts("result one of 404 , 500"), "23");
    CHECK_STR(attempts("result greater than 404"), "3");
    CHECK_STR(attempts("result greater than or equal 400"), "23");
    CHECK_STR(attempts("result less than 200"), "4");
    CHECK_STR(attempts("result less than or equal 200"), "146");
    CHECK_STR(attempts("result between 200 and 299"), "156");
    CHECK_STR(attempts("result between '200' and '299'"), "156");
    CHECK_STR(attempts("logDate equals 2026-11-22"), "12345");
    CHECK_STR(attempts("logDate equals '2026-11-22T10:00:00Z'"), "23");
    CHECK_STR(attempts("logDate equals 2026-11-22T10:00:00.250Z"), "3");
    CHECK_STR(attempts("logDate equals 2026-11-22T10:00:00.000Z"), "2");
    CHECK_STR(attempts("logDate not equals 2026-11-22"), "6");
    CHECK_STR(attempts("logDate greater than '2026-11-22T10:00:00Z'"), "456");
    CHECK_STR(attempts("logDate greater than 2026-11-22T10:00:00.000Z"), "3456");
    CHECK_STR(attempts("logDate greater than or equal 2026-11-22T10:00:00Z"), "23456");
    CHECK_STR(attempts("logDate less than 2026-11-22T10:00:00Z"), "1");
    CHECK_STR(attempts("logDate less than or equal 2026-11-22T10:00:00Z"), "123");
    CHECK_STR(attempts("logDate less than or equal 2026-11-22"), "12345");
    CHECK_STR(attempts("logDate between 2026-11-22T10:00:00Z and 2026-11-22T10:00:01Z"), "234");
    CHECK_STR(attempts("logDate between '2026-11-22' and '2026-11-22'"), "12345");
    CHECK_STR(attempts("logDate greater than 2026-11-22"), "6");
    CHECK_STR(attempts("logDate equals 'Sun, 22 Nov 2026 10:00:00 GMT'"), "23");
    CHECK_STR(attempts("result equals '500' and logDate greater than or equal '2026-11-22T10:00:00Z'"), "3");
    CHECK_STR(attempts("RESULT EQUALS 200 AND LOGDATE EQUALS 2026-11-23"), "6");
    CHECK_STR(attempts("result\tequals\n200"), "16");
    /* The union's additions: the webhook list's operators on the log's fields. */
    CHECK_STR(attempts("result eq 200"), "16");
    CHECK_STR(attempts("result ne 200"), "2345");
    CHECK_STR(attempts("result in 200|201"), "156");
    CHECK_STR(attempts("result not one of 200,201"), "234");
    CHECK_STR(attempts("result like 0"), "123456");
    CHECK_STR(attempts("result like 4"), "2");
    CHECK_STR(attempts("result not like 20"), "234");
    CHECK_STR(attempts("logDate one of 2026-11-23|2026-11-22T10:00:00.250Z"), "36");
    CHECK_STR(attempts("logDate not one of 2026-11-23"), "12345");
}

static void test_attempt_errors(void)
{
    const hk_filter_field *A = hk_filter_attempt_fields;
    CHECK_ERR("color equals red", A, "unknown field \"color\" (fields: result, logDate)");
    CHECK_ERR("logDate greater than yesterday", A, "logDate needs a date");
    CHECK_ERR("logDate greater than yesterday", A, "\"yesterday\"");
    CHECK_ERR("logDate equals 2026-13-45", A, "logDate needs a date");
    CHECK_ERR("result between 200 299", A, "expected \"and\" between the two values of between, found \"299\"");
    CHECK_ERR("result not frob 200", A, "unknown operator");
    CHECK_ERR("result equals abc", A, "result needs an integer, not \"abc\"");
    CHECK_ERR("result equals 200 and", A, "a condition must follow \"and\"");
    CHECK_ERR("logDate like 2026", A, "operator \"like\" does not apply to logDate, which is a date");
    CHECK_ERR("logDate not like 2026", A, "does not apply to logDate");
    CHECK_ERR("result equals 200 result equals 201", A, "expected \"and\", found \"result\"");
    CHECK_ERR("result greater 200", A, "unknown operator \"greater\" after result");
    CHECK_ERR("result greater than or 200", A, "result needs an integer, not \"or\"");
}

/* ---- hostile input ---------------------------------------------------------------------- */

static void test_hostile(void)
{
    /* A bad token is quoted cut short, as valid UTF-8, with control characters replaced. */
    char text[200] = "x";
    for (int i = 0; i < 30; i++)
        strcat(text, "\xc3\xa9"); /* é */
    strcat(text, " equals 1");
    const char *e = error_of(text, hk_filter_webhook_fields);
    CHECK(strstr(e, "...\"") != NULL);
    CHECK(strlen(e) < HK_FILTER_ERR_MAX);
    const char *q = strchr(e, '"') + 1;
    /* Every é in the quote is whole. */
    size_t n = (size_t)(strstr(q, "...") - q);
    CHECK(n % 2 == 1 && n <= 41);
    e = error_of("webhookName frob\x01\xff\xc3 x", hk_filter_webhook_fields);
    CHECK(strstr(e, "\"frob???\"") != NULL);

    /* Long input is parsed in one pass: a quoted value of 4 MiB of escapes
     * and a run of 4 MiB of blanks (a quadratic parser would not finish). */
    size_t big = 4u << 20;
    char *s = hk_malloc(big * 2 + 64);
    size_t o = 0;
    o += (size_t)sprintf(s, "webhookName equals '");
    for (size_t i = 0; i < big / 2; i++) {
        s[o++] = '\'';
        s[o++] = '\'';
    }
    s[o++] = '\'';
    memset(s + o, ' ', big);
    o += big;
    strcpy(s + o, "and webhookId equals 1");
    hk_filter *f;
    char err[HK_FILTER_ERR_MAX];
    CHECK_INT(hk_filter_parse(s, hk_filter_webhook_fields, &f, err), 0);
    hk_filter_webhook rec = {&wh[0], NULL, NULL};
    CHECK(!hk_filter_match(f, &rec));
    hk_filter_free(f);
    /* And many % in a like pattern match in bounded time. */
    memset(s, 0, 64);
    strcpy(s, "webhookName like '");
    o = strlen(s);
    for (size_t i = 0; i < 2000; i++)
        s[o++] = '%';
    strcpy(s + o, "z'");
    CHECK_INT(hk_filter_parse(s, hk_filter_webhook_fields, &f, err), 0);
    CHECK(!hk_filter_match(f, &rec));
    hk_filter_free(f);
    free(s);
}

int main(void)
{
    test_webhook_forms();
    test_webhook_event_ids();
    test_webhook_errors();
    test_attempt_forms();
    test_attempt_errors();
    test_hostile();
    return unit_done();
}
