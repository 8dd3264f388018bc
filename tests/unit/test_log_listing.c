/* Unit tests of what the attempt-log listing reads: the brief walk of a
 * webhook's records (everything but the request and response texts, in the
 * same order as the full walk) and the log filter over stored records. */
#include "filter.h"
#include "state_fixture.h"

#define N 7

struct seen {
    size_t n;
    uint64_t ids[N + 1];
    int status[N + 1];
    bool texts_empty;
    bool strings_kept;
    const hk_filter *f;
};

static int see(const hk_attempt *a, void *arg)
{
    struct seen *s = arg;
    if (s->f != NULL && !hk_filter_match(s->f, a))
        return 0;
    if (s->n < N + 1) {
        s->ids[s->n] = a->id;
        s->status[s->n] = a->status;
    }
    s->n++;
    s->texts_empty =
        s->texts_empty && a->request == NULL && a->request_len == 0 && a->response == NULL && a->response_len == 0;
    s->strings_kept = s->strings_kept && strcmp(a->event_name, "log.event") == 0 &&
                      strcmp(a->url, "http://127.0.0.1:9/hook") == 0 && strcmp(a->error, "nope") == 0;
    return 0;
}

static int stop_after_two(const hk_attempt *a, void *arg)
{
    int *n = arg;
    HK_UNUSED(a);
    return ++*n == 2 ? 7 : 0;
}

int main(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    hk_webhook w;
    fx_webhook(&w, "logged", "log.event", NULL);
    uint32_t wid = fx_create(s, &w);
    static const int statuses[N] = {200, 404, 500, 0, 200, 201, 503};
    for (int i = 0; i < N; i++) {
        hk_attempt rec = {.webhook_id = wid,
                          .event_name = "log.event",
                          .event_uuid = "00000000-0000-0000-0000-000000000001",
                          .attempt = 1,
                          .started_ms = 1000 + (uint64_t)i * 1000,
                          .status = statuses[i],
                          .error = "nope",
                          .url = "http://127.0.0.1:9/hook",
                          .request = "POST /hook HTTP/1.1\r\n\r\n{}",
                          .request_len = 25,
                          .response = "HTTP/1.1 200 OK\r\n\r\n",
                          .response_len = 19,
                          .sync = true};
        hk_op op = {.type = HK_OP_ATTEMPT, .now_ms = rec.started_ms, .u.attempt = {.rec = &rec, .disable_after = 100}};
        CHECK_INT(hk_store_apply(s, &op), 0);
    }

    /* The brief walk sees what the full walk sees, newest first, without the texts. */
    struct seen full = {.texts_empty = true, .strings_kept = true};
    struct seen brief = {.texts_empty = true, .strings_kept = true};
    CHECK_INT(hk_store_attempts_each(s, wid, 0, true, see, &full), 0);
    CHECK_INT(hk_store_attempts_each_brief(s, wid, 0, true, see, &brief), 0);
    CHECK_INT(full.n, N);
    CHECK_INT(brief.n, N);
    CHECK(!full.texts_empty);
    CHECK(brief.texts_empty);
    CHECK(full.strings_kept && brief.strings_kept);
    CHECK(memcmp(full.ids, brief.ids, sizeof(full.ids)) == 0);
    CHECK(memcmp(full.status, brief.status, sizeof(full.status)) == 0);
    CHECK(brief.ids[0] > brief.ids[N - 1]);
    CHECK_INT(brief.status[0], 503);
    /* Oldest first from an id; a non-zero return stops the walk and is returned. */
    struct seen from = {.texts_empty = true, .strings_kept = true};
    CHECK_INT(hk_store_attempts_each_brief(s, wid, brief.ids[2], false, see, &from), 0);
    CHECK_INT(from.n, 3);
    CHECK_INT(from.ids[0], brief.ids[2]);
    int calls = 0;
    CHECK_INT(hk_store_attempts_each_brief(s, wid, 0, true, stop_after_two, &calls), 7);
    CHECK_INT(calls, 2);
    /* Another webhook's records are not visited. */
    struct seen none = {0};
    CHECK_INT(hk_store_attempts_each_brief(s, wid + 1, 0, true, see, &none), 0);
    CHECK_INT(none.n, 0);

    /* The log filter over the stored records (logDate: started at 1970-01-01T00:00:01Z + i s). */
    static const struct {
        const char *expr;
        size_t n;
    } cases[] = {
        {"result equals 200", 2},
        {"result greater than or equal 500", 2},
        {"result one of 0|201", 2},
        {"result not one of 200,201", 4},
        {"logDate equals 1970-01-01", N},
        {"logDate greater than 1970-01-01T00:00:03Z", 4},
        {"logDate between 1970-01-01T00:00:02Z and 1970-01-01T00:00:03Z and result ne 404", 1},
    };
    for (size_t i = 0; i < HK_ARRAY_SIZE(cases); i++) {
        hk_filter *f;
        char err[HK_FILTER_ERR_MAX];
        CHECK_INT(hk_filter_parse(cases[i].expr, hk_filter_attempt_fields, &f, err), 0);
        struct seen m = {.f = f, .texts_empty = true, .strings_kept = true};
        CHECK_INT(hk_store_attempts_each_brief(s, wid, 0, true, see, &m), 0);
        if (m.n != cases[i].n)
            fprintf(stderr, "filter \"%s\": %zu records, expected %zu\n", cases[i].expr, m.n, cases[i].n);
        CHECK_INT(m.n, cases[i].n);
        hk_filter_free(f);
    }

    hk_webhook_free(&w);
    hk_store_close(s);
    fx_rmdir();
    return unit_done();
}
