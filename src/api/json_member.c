/* json_member.c: case-insensitive member lookup for SuperOffice-dialect bodies. */
#include "json_member.h"

#include "json_patch.h"

json_t *hk_json_member(const json_t *obj, const char *name)
{
    const char *k = hk_json_object_key(obj, name, true);
    return k ? json_object_get(obj, k) : NULL;
}

json_t *hk_json_member_value(const json_t *obj, const char *name)
{
    json_t *v = hk_json_member(obj, name);
    return json_is_null(v) ? NULL : v;
}
