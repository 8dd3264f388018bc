/* select.c: $select on a view (see select.h). */
#include "select.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

void hk_select_apply(json_t *view, const char *select)
{
    if (select == NULL || *select == '\0' || !json_is_object(view))
        return;
    /* Mark the selected members, then null the rest: one pass per name, whatever the view's size. */
    json_t *keep = json_object();
    for (const char *s = select; *s;) {
        size_t len = strcspn(s, ",");
        const char *b = s, *e = s + len;
        while (b < e && *b == ' ')
            b++;
        /* "Associate/FullName" selects the whole Associate. */
        const char *slash = memchr(b, '/', (size_t)(e - b));
        if (slash != NULL)
            e = slash;
        while (e > b && e[-1] == ' ')
            e--;
        const char *k;
        json_t *v;
        json_object_foreach (view, k, v)
            if (strlen(k) == (size_t)(e - b) && strncasecmp(b, k, (size_t)(e - b)) == 0)
                json_object_set_new(keep, k, json_true());
        s += len;
        if (*s)
            s++;
    }
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe (view, tmp, k, v)
        if (strcmp(k, "_Links") != 0 && json_object_get(keep, k) == NULL)
            json_object_set_new(view, k, json_null());
    json_decref(keep);
}
