/*
 * json_member.h: reading request bodies the way the SuperOffice dialect
 * binds them: member names in any letter case ("eventName", "EVENTNAME"
 * and "EventName" are one member; an exact match wins when a body holds
 * several). Every SuperOffice-dialect body (REST and Agents) is read
 * through these.
 */
#ifndef HK_JSON_MEMBER_H
#define HK_JSON_MEMBER_H

#include <jansson.h>

/**
 * The value of obj's member name, in any letter case (an exact match
 * preferred); NULL when obj is not an object or has no such member. A JSON
 * null is returned as is. Borrowed from obj. One call scans obj at most
 * once.
 */
json_t *hk_json_member(const json_t *obj, const char *name);

/** As hk_json_member, with a JSON null also giving NULL (absent and null mean the same). */
json_t *hk_json_member_value(const json_t *obj, const char *name);

#endif
