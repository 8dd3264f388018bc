/* test_utf8.c: the UTF-8 helpers: validation edge cases, counting, sanitizing, cutting. */
#include "unit.h"
#include "utf8.h"

#define V(s) hk_utf8_valid(s, sizeof(s) - 1)

static void test_valid(void)
{
    CHECK(V(""));
    CHECK(V("plain ascii"));
    CHECK(V("caf\xc3\xa9"));       /* é */
    CHECK(V("\xe2\x82\xac"));      /* € */
    CHECK(V("\xf0\x9f\x98\x80"));  /* 😀 */
    CHECK(V("\xf4\x8f\xbf\xbf"));  /* U+10FFFF, the last one */
    CHECK(V("\xed\x9f\xbf"));      /* U+D7FF, just below the surrogates */
    CHECK(V("\xee\x80\x80"));      /* U+E000, just above them */
    CHECK(V("a\0b"));              /* NUL is a character */
    CHECK(!V("\x80"));             /* a lone continuation byte */
    CHECK(!V("\xc3"));             /* a truncated sequence */
    CHECK(!V("\xe2\x82"));         /* truncated */
    CHECK(!V("\xc0\xaf"));         /* overlong '/' */
    CHECK(!V("\xc1\xbf"));         /* overlong */
    CHECK(!V("\xe0\x80\xaf"));     /* overlong, three bytes */
    CHECK(!V("\xf0\x80\x80\xaf")); /* overlong, four bytes */
    CHECK(!V("\xed\xa0\x80"));     /* U+D800, a surrogate */
    CHECK(!V("\xed\xbf\xbf"));     /* U+DFFF */
    CHECK(!V("\xf4\x90\x80\x80")); /* U+110000 */
    CHECK(!V("\xf5\x80\x80\x80")); /* past the range */
    CHECK(!V("\xff"));
    CHECK(!V("\xc3\x28")); /* a lead byte followed by ASCII */
    CHECK_INT(hk_utf8_valid_prefix("ab\xc3\xa9\xff"
                                   "cd",
                                   7),
              4);
    CHECK_INT(hk_utf8_seq("\xf0\x9f\x98\x80", 4), 4);
    CHECK_INT(hk_utf8_seq("\xf0\x9f\x98\x80", 3), 0); /* runs past n */
    CHECK_INT(hk_utf8_seq("A", 1), 1);
}

static void test_chars(void)
{
    CHECK_INT(hk_utf8_chars("", 0), 0);
    CHECK_INT(hk_utf8_chars("abc", 3), 3);
    CHECK_INT(hk_utf8_chars("caf\xc3\xa9", 5), 4);
    CHECK_INT(hk_utf8_chars("\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 8), 2);
    /* Invalid bytes count one each, as they would after sanitizing. */
    CHECK_INT(hk_utf8_chars("\x80\x80", 2), 2);
    CHECK_INT(hk_utf8_chars("a\xc3", 2), 2);
    CHECK_INT(hk_utf8_chars("\xed\xa0\x80", 3), 3);
}

static void test_sanitize(void)
{
    hk_buf b = HK_BUF_INIT;
    hk_utf8_sanitize(&b, "ok \xc3\xa9", 5);
    CHECK_STR(b.data, "ok \xc3\xa9");
    hk_buf_reset(&b);
    hk_utf8_sanitize(&b,
                     "a\xff"
                     "b\xc3",
                     4);
    CHECK_STR(b.data, "a" HK_UTF8_REPLACEMENT "b" HK_UTF8_REPLACEMENT);
    hk_buf_reset(&b);
    /* A surrogate is three invalid bytes: three replacements. */
    hk_utf8_sanitize(&b, "\xed\xa0\x80", 3);
    CHECK_STR(b.data, HK_UTF8_REPLACEMENT HK_UTF8_REPLACEMENT HK_UTF8_REPLACEMENT);
    CHECK(hk_utf8_valid(b.data, b.len));
    hk_buf_reset(&b);
    /* NUL is kept as it is. */
    hk_utf8_sanitize(&b, "a\0b", 3);
    CHECK_INT(b.len, 3);
    CHECK(memcmp(b.data, "a\0b", 3) == 0);
    hk_buf_free(&b);
    hk_utf8_sanitize(&b, "", 0);
    CHECK(b.data != NULL);
    CHECK_STR(b.data, "");
    hk_buf_free(&b);
}

static void test_cut(void)
{
    const char *s = "ab\xc3\xa9"
                    "c\xf0\x9f\x98\x80"; /* a b é c 😀: 9 bytes */
    CHECK_INT(hk_utf8_cut(s, 9, 100), 9);
    CHECK_INT(hk_utf8_cut(s, 9, 9), 9);
    CHECK_INT(hk_utf8_cut(s, 9, 2), 2);
    CHECK_INT(hk_utf8_cut(s, 9, 3), 2); /* inside é */
    CHECK_INT(hk_utf8_cut(s, 9, 4), 4);
    CHECK_INT(hk_utf8_cut(s, 9, 5), 5);
    CHECK_INT(hk_utf8_cut(s, 9, 6), 5); /* inside 😀 */
    CHECK_INT(hk_utf8_cut(s, 9, 7), 5);
    CHECK_INT(hk_utf8_cut(s, 9, 8), 5);
    CHECK_INT(hk_utf8_cut(s, 9, 0), 0);
    /* Invalid bytes are single characters: a cut may fall between them. */
    CHECK_INT(hk_utf8_cut("\x80\x80\x80\x80\x80", 5, 3), 3);
    CHECK_INT(hk_utf8_cut_chars(s, 9, 0), 0);
    CHECK_INT(hk_utf8_cut_chars(s, 9, 3), 4);
    CHECK_INT(hk_utf8_cut_chars(s, 9, 5), 9);
    CHECK_INT(hk_utf8_cut_chars(s, 9, 50), 9);
    CHECK_INT(hk_utf8_cut_chars("\xff\xff"
                                "a",
                                3, 2),
              2);
}

int main(void)
{
    test_valid();
    test_chars();
    test_sanitize();
    test_cut();
    return unit_done();
}
