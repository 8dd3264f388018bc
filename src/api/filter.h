/*
 * filter.h: the one EnergyCAP `filter=` grammar, used by the webhook list
 * (GET /api/v3/webhook) and the attempt log (GET /api/v3/webhook/{id}/log).
 *
 * A filter is parsed once into a list of conditions, all of which must hold
 * (they are joined with `and`), and then evaluated against typed records
 * through a table of field accessors. Parsing is a single left-to-right pass,
 * linear in the length of the text; nothing is evaluated while parsing.
 *
 * Grammar (keywords and field names case-insensitive, any white space
 * between tokens):
 *
 *   filter    := [ condition { "and" condition } ]
 *   condition := FIELD operator
 *   operator  := ( "equals" | "eq" | "not equals" | "ne"
 *                | "like" | "not like"
 *                | "greater than" | "greater than or equal"
 *                | "less than" | "less than or equal" ) value
 *              | ( "one of" | "in" | "not one of" ) value { ("," | "|") value }
 *              | "between" value "and" value
 *   value     := '"' chars '"' | "'" chars "'" | bare
 *
 * A bare value runs to the next white space (in a list also to `,` or `|`).
 * In a quoted value a doubled quote or a backslash before the quote or
 * another backslash stands for that character. At most HK_FILTER_CONDS_MAX
 * conditions and HK_FILTER_VALUES_MAX values per list.
 *
 * Each field has a kind, which says how its values are read and which
 * operators apply:
 *
 *   TEXT  equals, not equals, like, not like, one of, not one of.
 *         Compared without regard to case. `like` is a substring match, or
 *         an SQL LIKE pattern (% any run, _ one character) when the value
 *         holds % or _.
 *   INT   every operator. Values must be integers; `like` matches the
 *         decimal digits as text.
 *   BOOL  equals, not equals, like (as equals), not like, one of, not one
 *         of. Values true, false, 1 or 0.
 *   DATE  every operator except like and not like. A value is a date
 *         (hk_parse_date) standing for the span its precision names:
 *         `2026-11-22` the whole day, `2026-11-22T10:00:00Z` that second,
 *         `2026-11-22T10:00:00.250Z` that millisecond. `equals` is inside
 *         the span, `greater than` after it, `greater than or equal` from
 *         its start, `less than` before it, `less than or equal` up to its
 *         end, `between a and b` from a's start to b's end.
 *
 * A field may have several values in one record (a webhook's events): a
 * positive operator holds when any value satisfies it, and `not equals`,
 * `not like` and `not one of` hold when none satisfies the positive form.
 *
 * Errors are 400 material: the message (at most HK_FILTER_ERR_MAX bytes,
 * valid UTF-8) starts with "filter:" and quotes the token at fault.
 */
#ifndef HK_FILTER_H
#define HK_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "model.h"

#define HK_FILTER_CONDS_MAX 8   /**< conditions in one filter */
#define HK_FILTER_VALUES_MAX 32 /**< values in one `one of` list */
#define HK_FILTER_ERR_MAX 256   /**< bytes of an error message, NUL included */

/** How a field's values are read and compared; decides the operators it takes. */
enum hk_filter_kind {
    HK_FILTER_TEXT, /**< text, compared case-insensitively */
    HK_FILTER_INT,  /**< a signed integer */
    HK_FILTER_BOOL, /**< true or false */
    HK_FILTER_DATE  /**< a time in ms since the epoch, UTC */
};

/** One value of a record's field, as an accessor hands it to the matcher. */
typedef struct hk_filter_value {
    const char *text; /**< HK_FILTER_TEXT: NUL-terminated, borrowed for the visit only ("" for none) */
    int64_t num;      /**< HK_FILTER_INT: the number; BOOL: 0 or 1; DATE: ms since the epoch */
} hk_filter_value;

/** Visits one value; returns true to stop the walk (a match was found). */
typedef bool (*hk_filter_visit)(const hk_filter_value *v, void *arg);

/**
 * A field a filter may name. A table of them ends with an entry whose name
 * is NULL; tables and names are static.
 */
typedef struct hk_filter_field {
    const char *name;         /**< as written in a filter (compared case-insensitively) */
    enum hk_filter_kind kind; /**< how values are read */
    /**
     * Calls visit with each of rec's values of this field (one for most
     * fields; none or many for a list) until visit returns true, and
     * returns whether it did. rec is what hk_filter_match was given.
     */
    bool (*each)(const void *rec, hk_filter_visit visit, void *arg);
} hk_filter_field;

/** A parsed filter: opaque; hk_filter_free releases it. */
typedef struct hk_filter hk_filter;

/**
 * Parses text against the fields of a table. On success *out is a new
 * filter the caller frees with hk_filter_free (a blank text gives a filter
 * without conditions, which matches every record). On failure returns
 * HK_EINVAL, leaves *out NULL and writes the reason to err. fields must
 * outlive the filter.
 */
int hk_filter_parse(const char *text, const hk_filter_field *fields, hk_filter **out,
                    char err[HK_FILTER_ERR_MAX]) HK_MUST_CHECK;

/** Number of conditions in f (0 for NULL or a blank filter: everything matches). */
size_t hk_filter_conditions(const hk_filter *f);

/**
 * True when rec satisfies every condition of f (always for NULL). rec is
 * the record type the field table was written for.
 */
bool hk_filter_match(const hk_filter *f, const void *rec);

/** Frees a filter; safe on NULL. */
void hk_filter_free(hk_filter *f);

/* ---- the two tables ------------------------------------------------------- */

/**
 * A webhook as the list filter sees it. Fields of hk_filter_webhook_fields:
 * webhookId (INT), webhookName, webhookDescription, url (TEXT),
 * webhookEventTypeId (INT) and webhookEventTypeName (TEXT), each of the
 * webhook's events, webhookStatus (TEXT: Active, Stopped, TooManyErrors),
 * active (BOOL: state is Active), locked (BOOL), extension (TEXT, "" when
 * none).
 */
typedef struct hk_filter_webhook {
    const hk_webhook *webhook; /**< the record (borrowed) */
    /**
     * Looks an event name's type id up for webhookEventTypeId (e.g. over
     * hk_store_event_type_id); an event without an id (nonzero return)
     * is skipped. NULL: webhookEventTypeId matches no event.
     */
    int (*event_type_id)(void *arg, const char *name, uint32_t *id);
    void *arg; /**< event_type_id's argument */
} hk_filter_webhook;

/** The webhook list's fields; records are const hk_filter_webhook *. */
extern const hk_filter_field hk_filter_webhook_fields[];

/**
 * The attempt log's fields; records are const hk_attempt *: result (INT:
 * the HTTP status, 0 when no response came) and logDate (DATE: when the
 * attempt started).
 */
extern const hk_filter_field hk_filter_attempt_fields[];

#endif
