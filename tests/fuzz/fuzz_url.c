/*
 * fuzz_url.c: the one URL parser (net/url.c), which decides what a webhook
 * may be saved with and where a delivery goes. What it accepts must be a
 * URL the client can send to: a host without '%', '@' or control bytes, a
 * port, a target inside the string.
 */
#include "fuzz.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_str(data, size);
    hk_url u;
    const char *why = NULL;
    int rc = hk_url_parse(s, &u, &why);
    if (rc == 0) {
        size_t hl = strlen(u.host);
        FUZZ_CHECK(hl > 0 && hl <= HK_URL_MAX_HOST);
        for (size_t i = 0; i < hl; i++) {
            unsigned char c = (unsigned char)u.host[i];
            FUZZ_CHECK(c > 0x20 && c < 0x7f && c != '%' && c != '@' && c != '/' && !(c >= 'A' && c <= 'Z'));
        }
        FUZZ_CHECK(u.port != 0);
        FUZZ_CHECK(u.target >= s && u.target + u.target_len <= s + strlen(s));
        char auth[HK_URL_MAX_HOST + 16];
        size_t n = hk_url_authority(&u, auth, sizeof(auth));
        FUZZ_CHECK(n < sizeof(auth) && strlen(auth) == n);
        /* What was accepted parses again from its own parts. */
        size_t cap = strlen(auth) + u.target_len + 16;
        char *again = malloc(cap);
        snprintf(again, cap, "%s://%s/%.*s", u.tls ? "https" : "http", auth,
                 (int)(u.target_len && u.target[0] == '/' ? u.target_len - 1 : u.target_len),
                 u.target_len && u.target[0] == '/' ? u.target + 1 : u.target);
        hk_url v;
        FUZZ_CHECK(hk_url_parse(again, &v, &why) == 0);
        FUZZ_CHECK(strcmp(v.host, u.host) == 0 && v.port == u.port && v.tls == u.tls);
        free(again);
    } else {
        FUZZ_CHECK(rc == HK_EINVAL && why != NULL && why[0] != '\0');
    }
    free(s);
    return 0;
}
