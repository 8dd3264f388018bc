/*
 * xml.h: the well-formedness check of XML bodies (Ivanti Execute), on
 * libexpat.
 *
 * A document passes when expat parses it completely as UTF-8 (whatever its
 * declaration says) with one root element nested at most HK_XML_MAX_DEPTH
 * deep, and WITHOUT a document type declaration: a DOCTYPE stops the
 * parser from its start handler, before any entity could be declared, so
 * no entity expansion (billion laughs, external entities) ever happens.
 * Nothing is kept: the check only says yes or no, with a reason.
 */
#ifndef HK_XML_H
#define HK_XML_H

#include <stddef.h>

#include "common.h"

/** Element nesting accepted at most. */
#define HK_XML_MAX_DEPTH 256

/**
 * Checks that the len bytes of text are one well-formed XML document
 * without a DTD. 0, or HK_EINVAL with a reason and its position in err
 * (NUL-terminated, cut to errlen), e.g. "an end tag that does not match
 * its start tag at line 1, column 7", "a second root element at line 1,
 * column 4", "document type declarations are not accepted at line 1,
 * column 0"; UV_ENOMEM when the parser cannot be created.
 */
int hk_xml_check(const char *text, size_t len, char *err, size_t errlen) HK_MUST_CHECK;

#endif
