/*
 * select.h: the SuperOffice $select query option: only the named
 * properties of an answer are filled, the others are null.
 */
#ifndef HK_SELECT_H
#define HK_SELECT_H

#include <jansson.h>

/**
 * Sets every top-level member of view not named in select to null.
 * select is "A,b,c/d": names compare case-insensitively, blanks around
 * them are ignored, and "c/d" keeps all of c. _Links is always kept. NULL
 * or "" selects everything (view unchanged). Costs one pass over view per
 * name in select.
 */
void hk_select_apply(json_t *view, const char *select);

#endif
