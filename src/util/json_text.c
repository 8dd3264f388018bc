/* json_text.c: JSON string quoting into an hk_buf. */
#include "json_text.h"

void hk_json_text_quote(hk_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case: every byte becomes \u00XX; reserve once, then write in place. */
    hk_buf_reserve(out, len * 6 + 2);
    char *o = out->data + out->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            *o++ = '\\';
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    *o = '\0';
    out->len = (size_t)(o - out->data);
}
