/* test_buf.c: hk_buf, the growable byte buffer: limits, growth, steal, printf. */
#include <uv.h>

#include "buf.h"
#include "unit.h"

/* Under AddressSanitizer a huge allocation must fail like it does in
 * production (NULL), not abort the test. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

static void test_empty(void)
{
    hk_buf b = HK_BUF_INIT;
    CHECK(b.data == NULL);
    CHECK_STR(hk_buf_cstr(&b), "");
    hk_buf_free(&b); /* safe on an unused buffer */
    hk_buf_free(&b); /* and twice */
    hk_buf_reset(&b);
    CHECK_INT(b.len, 0);
    size_t len = 99;
    char *s = hk_buf_steal(&b, &len);
    CHECK(s != NULL);
    CHECK_STR(s, "");
    CHECK_INT(len, 0);
    free(s);
}

static void test_append(void)
{
    hk_buf b = HK_BUF_INIT;
    hk_buf_puts(&b, "hello");
    hk_buf_putc(&b, ' ');
    hk_buf_append(&b, "world!!", 5);
    hk_buf_append(&b, NULL, 0);
    CHECK_STR(b.data, "hello world");
    CHECK_INT(b.len, 11);
    CHECK(b.cap > b.len);
    /* Growth far past the first allocation keeps every byte. */
    for (int i = 0; i < 10000; i++)
        hk_buf_putc(&b, (char)('a' + i % 26));
    CHECK_INT(b.len, 10011);
    CHECK(b.data[11] == 'a' && b.data[10010] == (char)('a' + 9999 % 26));
    CHECK(b.data[b.len] == '\0');
    /* Embedded NULs are bytes like any other. */
    hk_buf_reset(&b);
    hk_buf_append(&b, "a\0b", 3);
    CHECK_INT(b.len, 3);
    CHECK(memcmp(b.data, "a\0b", 4) == 0);
    hk_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
}

static void test_printf(void)
{
    hk_buf b = HK_BUF_INIT;
    hk_buf_printf(&b, "%d-%s", 42, "x");
    CHECK_STR(b.data, "42-x");
    /* Longer than what is allocated: formatted again after growing. */
    char big[5000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    hk_buf_printf(&b, "[%s]", big);
    CHECK_INT(b.len, 4 + 2 + 4999);
    CHECK(b.data[4] == '[' && b.data[5] == 'z' && b.data[b.len - 1] == ']');
    CHECK(b.data[b.len] == '\0');
    /* Fits in the room left: formatted once, in place. */
    size_t cap = b.cap;
    hk_buf_reset(&b);
    hk_buf_printf(&b, "%s", "short");
    CHECK_STR(b.data, "short");
    CHECK_INT(b.cap, cap);
    hk_buf_free(&b);
}

static void test_limits(void)
{
    hk_buf b = HK_BUF_INIT;
    /* A peer's bytes: up to the limit, not one past it. */
    CHECK_INT(hk_buf_try_append(&b, "0123456789", 10, 16), 0);
    CHECK_INT(hk_buf_try_append(&b, "abcdef", 6, 16), 0);
    CHECK_INT(b.len, 16);
    CHECK_STR(b.data, "0123456789abcdef");
    CHECK(b.cap <= 17); /* the allocation never exceeds limit + 1 */
    CHECK_INT(hk_buf_try_append(&b, "x", 1, 16), HK_ETOOBIG);
    CHECK_INT(b.len, 16); /* unchanged on error */
    CHECK_STR(b.data, "0123456789abcdef");
    CHECK_INT(hk_buf_try_reserve(&b, 0, 16), 0);
    CHECK_INT(hk_buf_try_reserve(&b, 1, 16), HK_ETOOBIG);
    /* Sizes that would overflow are refused, not wrapped. */
    CHECK_INT(hk_buf_try_reserve(&b, SIZE_MAX, HK_BUF_NO_LIMIT), HK_ETOOBIG);
    CHECK_INT(hk_buf_try_reserve(&b, SIZE_MAX - 8, HK_BUF_NO_LIMIT), HK_ETOOBIG);
    CHECK_INT(hk_buf_try_reserve(&b, SIZE_MAX, 100), HK_ETOOBIG);
    CHECK_INT(b.len, 16);
    /* An allocation the system cannot satisfy fails softly. */
    CHECK_INT(hk_buf_try_reserve(&b, (size_t)1 << 62, HK_BUF_NO_LIMIT), UV_ENOMEM);
    CHECK_STR(b.data, "0123456789abcdef");
    hk_buf_free(&b);

    /* The first reservation of a limited buffer stays within the limit. */
    CHECK_INT(hk_buf_try_reserve(&b, 3, 5), 0);
    CHECK(b.cap >= 4 && b.cap <= 6);
    CHECK_STR(hk_buf_cstr(&b), "");
    hk_buf_free(&b);
}

static void test_consume_steal_shrink(void)
{
    hk_buf b = HK_BUF_INIT;
    hk_buf_puts(&b, "abcdef");
    hk_buf_consume(&b, 2);
    CHECK_STR(b.data, "cdef");
    hk_buf_consume(&b, 100);
    CHECK_INT(b.len, 0);
    CHECK_STR(hk_buf_cstr(&b), "");
    hk_buf_puts(&b, "kept");
    size_t len = 0;
    char *s = hk_buf_steal(&b, &len);
    CHECK_STR(s, "kept");
    CHECK_INT(len, 4);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
    free(s);

    char big[1000];
    memset(big, 'q', sizeof(big));
    hk_buf_append(&b, big, sizeof(big));
    hk_buf_shrink(&b, 4096); /* small enough to keep */
    CHECK(b.data != NULL);
    CHECK_INT(b.len, 0);
    hk_buf_append(&b, big, sizeof(big));
    hk_buf_shrink(&b, 512); /* too big: given back */
    CHECK(b.data == NULL && b.cap == 0);
    hk_buf_free(&b);
}

int main(void)
{
    test_empty();
    test_append();
    test_printf();
    test_limits();
    test_consume_steal_shrink();
    return unit_done();
}
