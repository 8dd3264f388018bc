/* Unit tests of JSON Patch (RFC 6902, with the RFC's appendix cases) and JSON Merge Patch (RFC 7396). */
#include <time.h>

#include "json_patch.h"
#include "unit.h"

/* Applies patch (JSON text) to doc (JSON text) and compares with want (JSON text); returns the status. */
static int patch_case(const char *doc, const char *patch, unsigned opts, const char *want)
{
    json_t *d = json_loads(doc, JSON_DECODE_ANY, NULL);
    json_t *p = json_loads(patch, JSON_DECODE_ANY, NULL);
    char err[256] = "";
    int rc = hk_json_patch_apply(&d, p, opts, err, sizeof(err));
    if (rc == 0 && want != NULL) {
        json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
        bool eq = hk_json_equal(d, w);
        if (!eq) {
            char *got = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
            fprintf(stderr, "patch %s on %s gave %s, expected %s\n", patch, doc, got, want);
            free(got);
        }
        CHECK(eq);
        json_decref(w);
    }
    if (rc != 0 && err[0] == '\0')
        fprintf(stderr, "no error message for %s\n", patch);
    json_decref(d);
    json_decref(p);
    return rc;
}

static void merge_case(const char *doc, const char *patch, const char *want, unsigned opts)
{
    json_t *d = json_loads(doc, JSON_DECODE_ANY, NULL);
    json_t *p = json_loads(patch, JSON_DECODE_ANY, NULL);
    json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
    hk_json_merge_patch(&d, p, opts);
    bool eq = hk_json_equal(d, w);
    if (!eq) {
        char *got = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
        fprintf(stderr, "merge %s on %s gave %s, expected %s\n", patch, doc, got, want);
        free(got);
    }
    CHECK(eq);
    json_decref(d);
    json_decref(p);
    json_decref(w);
}

/* Seconds of CPU time since start. */
static double cpu_since(clock_t start)
{
    return (double)(clock() - start) / CLOCKS_PER_SEC;
}

/*
 * A patch with many members costs time linear in its size: 100,000 new
 * members, matched case-insensitively one by one against the growing
 * object, took minutes when each lookup scanned the object. The bound is
 * generous (a sanitizer build, a shared machine) yet far below the
 * quadratic cost.
 */
static void test_large_patches(void)
{
    enum { N = 100000 };
    json_t *doc = json_pack("{s:s, s:{}}", "Name", "x", "Properties");
    json_t *patch = json_object(), *props = json_object();
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "Member%d", i);
        json_object_set_new(props, key, json_integer(i));
    }
    json_object_set_new(patch, "properties", props);
    clock_t t0 = clock();
    hk_json_merge_patch(&doc, patch, HK_PATCH_NOCASE);
    CHECK(cpu_since(t0) < 10.0);
    CHECK_INT(json_object_size(json_object_get(doc, "Properties")), N);
    json_decref(patch);

    /* The same members once more in another letter case, as a JSON Patch of replace operations. */
    patch = json_array();
    for (int i = 0; i < N / 2; i++) {
        char path[48];
        snprintf(path, sizeof(path), "/PROPERTIES/MEMBER%d", i);
        json_array_append_new(patch, json_pack("{s:s, s:s, s:i}", "op", "replace", "path", path, "value", -i));
    }
    char err[256] = "";
    t0 = clock();
    CHECK_INT(hk_json_patch_apply(&doc, patch, HK_PATCH_NOCASE | HK_PATCH_LAX_PATH, err, sizeof(err)), 0);
    CHECK(cpu_since(t0) < 10.0);
    json_t *p = json_object_get(doc, "Properties");
    CHECK_INT(json_object_size(p), N);
    CHECK_INT(json_integer_value(json_object_get(p, "Member7")), -7);
    CHECK_INT(json_integer_value(json_object_get(p, "Member99999")), 99999);
    json_decref(patch);
    json_decref(doc);
}

int main(void)
{
    /* RFC 6902 appendix A. */
    CHECK_INT(patch_case("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\"}]", 0,
                         "{\"baz\":\"qux\",\"foo\":\"bar\"}"),
              0);
    CHECK_INT(patch_case("{\"foo\":[\"bar\",\"baz\"]}", "[{\"op\":\"add\",\"path\":\"/foo/1\",\"value\":\"qux\"}]", 0,
                         "{\"foo\":[\"bar\",\"qux\",\"baz\"]}"),
              0);
    CHECK_INT(patch_case("{\"baz\":\"qux\",\"foo\":\"bar\"}", "[{\"op\":\"remove\",\"path\":\"/baz\"}]", 0,
                         "{\"foo\":\"bar\"}"),
              0);
    CHECK_INT(patch_case("{\"foo\":[\"bar\",\"qux\",\"baz\"]}", "[{\"op\":\"remove\",\"path\":\"/foo/1\"}]", 0,
                         "{\"foo\":[\"bar\",\"baz\"]}"),
              0);
    CHECK_INT(patch_case("{\"baz\":\"qux\",\"foo\":\"bar\"}",
                         "[{\"op\":\"replace\",\"path\":\"/baz\",\"value\":\"boo\"}]", 0,
                         "{\"baz\":\"boo\",\"foo\":\"bar\"}"),
              0);
    CHECK_INT(patch_case("{\"foo\":{\"bar\":\"baz\",\"waldo\":\"fred\"},\"qux\":{\"corge\":\"grault\"}}",
                         "[{\"op\":\"move\",\"from\":\"/foo/waldo\",\"path\":\"/qux/thud\"}]", 0,
                         "{\"foo\":{\"bar\":\"baz\"},\"qux\":{\"corge\":\"grault\",\"thud\":\"fred\"}}"),
              0);
    CHECK_INT(patch_case("{\"foo\":[\"all\",\"grass\",\"cows\",\"eat\"]}",
                         "[{\"op\":\"move\",\"from\":\"/foo/1\",\"path\":\"/foo/3\"}]", 0,
                         "{\"foo\":[\"all\",\"cows\",\"eat\",\"grass\"]}"),
              0);
    CHECK_INT(patch_case("{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}",
                         "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"qux\"},"
                         "{\"op\":\"test\",\"path\":\"/foo/1\",\"value\":2}]",
                         0, NULL),
              0);
    CHECK_INT(patch_case("{\"baz\":\"qux\"}", "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"bar\"}]", 0, NULL),
              HK_ECONFLICT);
    CHECK_INT(patch_case("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/child\",\"value\":{\"grandchild\":{}}}]", 0,
                         "{\"foo\":\"bar\",\"child\":{\"grandchild\":{}}}"),
              0);
    CHECK_INT(patch_case("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/baz/bat\",\"value\":\"qux\"}]", 0, NULL),
              HK_EINVAL);
    CHECK_INT(patch_case("{\"/\":9,\"~1\":10}", "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":10}]", 0, NULL), 0);
    CHECK_INT(patch_case("{\"/\":9,\"~1\":10}", "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":\"10\"}]", 0, NULL),
              HK_ECONFLICT);
    CHECK_INT(patch_case("{\"foo\":[\"bar\"]}", "[{\"op\":\"add\",\"path\":\"/foo/-\",\"value\":[\"abc\",\"def\"]}]", 0,
                         "{\"foo\":[\"bar\",[\"abc\",\"def\"]]}"),
              0);
    CHECK_INT(patch_case("{\"foo\":\"bar\"}", "[{\"op\":\"copy\",\"from\":\"/foo\",\"path\":\"/baz\"}]", 0,
                         "{\"foo\":\"bar\",\"baz\":\"bar\"}"),
              0);
    /* Replacing an array element overwrites it. */
    CHECK_INT(
        patch_case("{\"a\":[1,2,3]}", "[{\"op\":\"replace\",\"path\":\"/a/1\",\"value\":9}]", 0, "{\"a\":[1,9,3]}"), 0);
    /* Numbers compare by value in test. */
    CHECK_INT(patch_case("{\"n\":1}", "[{\"op\":\"test\",\"path\":\"/n\",\"value\":1.0}]", 0, NULL), 0);

    /* Malformed documents and operations. */
    CHECK_INT(patch_case("{}", "{\"op\":\"add\"}", 0, NULL), HK_EINVAL);
    CHECK_INT(patch_case("{}", "[{\"op\":\"frobnicate\",\"path\":\"/a\"}]", 0, NULL), HK_EINVAL);
    CHECK_INT(patch_case("{}", "[{\"op\":\"add\",\"path\":\"/a\"}]", 0, NULL), HK_EINVAL);
    CHECK_INT(patch_case("{}", "[{\"path\":\"/a\",\"value\":1}]", 0, NULL), HK_EINVAL);
    CHECK_INT(patch_case("{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/b\"}]", 0, NULL), HK_EINVAL);
    CHECK_INT(patch_case("{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"/b\",\"value\":2}]", 0, NULL), HK_EINVAL);
    CHECK_INT(patch_case("{\"a\":[1]}", "[{\"op\":\"add\",\"path\":\"/a/5\",\"value\":2}]", 0, NULL), HK_EINVAL);
    CHECK_INT(patch_case("{\"a\":[1]}", "[{\"op\":\"add\",\"path\":\"/a/01\",\"value\":2}]", 0, NULL), HK_EINVAL);
    CHECK_INT(patch_case("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/x~2\",\"value\":2}]", 0, NULL), HK_EINVAL);
    CHECK_INT(patch_case("{\"a\":{\"b\":1}}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a/c\"}]", 0, NULL),
              HK_EINVAL);

    /* Without the lax options a path is case-sensitive and needs its slash. */
    CHECK_INT(patch_case("{\"Name\":\"x\"}", "[{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"y\"}]", 0, NULL),
              HK_EINVAL);
    CHECK_INT(patch_case("{\"Name\":\"x\"}", "[{\"op\":\"replace\",\"path\":\"Name\",\"value\":\"y\"}]", 0, NULL),
              HK_EINVAL);
    /* With them, the existing spelling is kept. */
    unsigned so = HK_PATCH_NOCASE | HK_PATCH_LAX_PATH;
    CHECK_INT(patch_case("{\"Name\":\"x\"}", "[{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"y\"}]", so,
                         "{\"Name\":\"y\"}"),
              0);
    CHECK_INT(
        patch_case("{\"Name\":\"x\"}", "[{\"op\":\"add\",\"path\":\"NAME\",\"value\":\"y\"}]", so, "{\"Name\":\"y\"}"),
        0);
    CHECK_INT(patch_case("{\"Name\":\"x\",\"name\":\"z\"}", "[{\"op\":\"remove\",\"path\":\"name\"}]", so,
                         "{\"Name\":\"x\"}"),
              0);
    CHECK_INT(patch_case("{\"Events\":[\"a\"]}", "[{\"op\":\"add\",\"path\":\"events/-\",\"value\":\"b\"}]", so,
                         "{\"Events\":[\"a\",\"b\"]}"),
              0);
    CHECK_INT(patch_case("{\"Name\":\"x\"}", "[{\"op\":\"test\",\"path\":\"/NAME\",\"value\":\"x\"}]", so, NULL), 0);
    CHECK_INT(patch_case("{\"Name\":\"x\"}", "[{\"op\":\"test\",\"path\":\"/NAME\",\"value\":\"X\"}]", so, NULL),
              HK_ECONFLICT);

    /* Pointers. */
    json_t *d = json_loads("{\"a\":{\"B\":[10,20]}}", 0, NULL);
    CHECK_INT(json_integer_value(hk_json_pointer_get(d, "/a/B/1", 0)), 20);
    CHECK(hk_json_pointer_get(d, "/a/b/1", 0) == NULL);
    CHECK_INT(json_integer_value(hk_json_pointer_get(d, "a/b/0", so)), 10);
    CHECK(hk_json_pointer_get(d, "/a/B/2", 0) == NULL);
    CHECK(hk_json_pointer_get(d, "", 0) == d);
    json_decref(d);

    /* RFC 7396 appendix A. */
    merge_case("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}", 0);
    merge_case("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}", 0);
    merge_case("{\"a\":\"b\"}", "{\"a\":null}", "{}", 0);
    merge_case("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}", 0);
    merge_case("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}", 0);
    merge_case("{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}", 0);
    merge_case("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}", 0);
    merge_case("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}", 0);
    merge_case("[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]", 0);
    merge_case("{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]", 0);
    merge_case("{\"a\":\"foo\"}", "null", "null", 0);
    merge_case("{\"a\":\"foo\"}", "\"bar\"", "\"bar\"", 0);
    merge_case("{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}", 0);
    merge_case("[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}", 0);
    merge_case("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}", 0);
    /* Case-insensitive member names keep the document's spelling. */
    merge_case("{\"Name\":\"x\",\"Headers\":{\"A\":\"1\"}}", "{\"name\":\"y\",\"headers\":{\"a\":null,\"B\":\"2\"}}",
               "{\"Name\":\"y\",\"Headers\":{\"B\":\"2\"}}", HK_PATCH_NOCASE);

    /* Members that differ only in case: removing one leaves the other findable, in both kinds of patch. */
    CHECK_INT(patch_case("{\"aB\":1,\"Ab\":2}",
                         "[{\"op\":\"remove\",\"path\":\"/aB\"},{\"op\":\"replace\",\"path\":\"/AB\",\"value\":3}]", so,
                         "{\"Ab\":3}"),
              0);
    CHECK_INT(
        patch_case("{}",
                   "[{\"op\":\"add\",\"path\":\"/x\",\"value\":1},{\"op\":\"add\",\"path\":\"/X\",\"value\":2},"
                   "{\"op\":\"move\",\"from\":\"/x\",\"path\":\"/y\"},{\"op\":\"test\",\"path\":\"/Y\",\"value\":2}]",
                   so, "{\"y\":2}"),
        0);
    merge_case("{\"aB\":1,\"Ab\":2}", "{\"aB\":null,\"AB\":3}", "{\"Ab\":3}", HK_PATCH_NOCASE);
    merge_case("{}", "{\"k\":1,\"K\":2}", "{\"k\":2}", HK_PATCH_NOCASE);

    test_large_patches();
    return unit_done();
}
