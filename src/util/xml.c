/*
 * xml.c: XML well-formedness with libexpat, refusing any DTD.
 *
 * The reasons for the common mistakes are worded as hookd has always
 * worded them (a mismatched end tag, a second root element, text after the
 * root); anything else is expat's own description.
 */
#include "xml.h"

#include <expat.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <uv.h>

/* expat takes an int length: feed longer documents in pieces. */
#define CHUNK (1 << 20)

struct check {
    XML_Parser parser;
    int depth;
    const char *refused; /* our reason for stopping the parser, NULL when expat found the error */
};

static void stop(struct check *c, const char *why)
{
    if (c->refused == NULL)
        c->refused = why;
    XML_StopParser(c->parser, XML_FALSE);
}

static void XMLCALL on_doctype(void *data, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                               int has_internal_subset)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
    stop(data, "document type declarations are not accepted");
}

/* Entities can only be declared inside a DTD, which on_doctype refuses
 * first; this is the second lock on the same door. */
static void XMLCALL on_entity(void *data, const XML_Char *name, int is_param, const XML_Char *value, int value_len,
                              const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
                              const XML_Char *notation)
{
    (void)name, (void)is_param, (void)value, (void)value_len, (void)base, (void)sysid, (void)pubid, (void)notation;
    stop(data, "entity declarations are not accepted");
}

static void XMLCALL on_start(void *data, const XML_Char *name, const XML_Char **attrs)
{
    (void)name, (void)attrs;
    struct check *c = data;
    if (++c->depth > HK_XML_MAX_DEPTH)
        stop(c, "elements nested too deeply");
}

static void XMLCALL on_end(void *data, const XML_Char *name)
{
    (void)name;
    struct check *c = data;
    c->depth--;
}

/* Words for expat's error, as hookd names the usual mistakes. */
static const char *reason(const struct check *c, enum XML_Error e, const char *text, size_t len, XML_Index at)
{
    switch (e) {
    case XML_ERROR_TAG_MISMATCH: return "an end tag that does not match its start tag";
    case XML_ERROR_NO_ELEMENTS: return c->depth > 0 ? "the document ends inside an element" : "no root element";
    case XML_ERROR_JUNK_AFTER_DOC_ELEMENT: {
        /* Another element is a second root; anything else is text. */
        size_t i = at >= 0 ? (size_t)at : len;
        if (i + 1 < len && text[i] == '<' && text[i + 1] != '!' && text[i + 1] != '?' && text[i + 1] != '/')
            return "a second root element";
        return "text after the root element";
    }
    case XML_ERROR_UNDEFINED_ENTITY: return "unknown entity (only &lt; &gt; &amp; &apos; &quot; exist without a DTD)";
    default: return XML_ErrorString(e);
    }
}

int hk_xml_check(const char *text, size_t len, char *err, size_t errlen)
{
    struct check c = {0};
    /* The body is UTF-8 whatever its declaration says: what is delivered is
     * a JSON string of these very bytes. */
    c.parser = XML_ParserCreate("UTF-8");
    if (c.parser == NULL) {
        snprintf(err, errlen, "out of memory for the XML parser");
        return UV_ENOMEM;
    }
    XML_SetUserData(c.parser, &c);
    XML_SetStartDoctypeDeclHandler(c.parser, on_doctype);
    XML_SetEntityDeclHandler(c.parser, on_entity);
    XML_SetElementHandler(c.parser, on_start, on_end);
    XML_SetParamEntityParsing(c.parser, XML_PARAM_ENTITY_PARSING_NEVER);

    enum XML_Status st = XML_STATUS_OK;
    size_t off = 0;
    do {
        size_t n = len - off > CHUNK ? CHUNK : len - off;
        bool final = off + n == len;
        st = XML_Parse(c.parser, text + off, (int)n, final);
        off += n;
    } while (st == XML_STATUS_OK && off < len);
    int rc = 0;
    if (st != XML_STATUS_OK) {
        enum XML_Error e = XML_GetErrorCode(c.parser);
        const char *why = c.refused ? c.refused : reason(&c, e, text, len, XML_GetCurrentByteIndex(c.parser));
        snprintf(err, errlen, "%s at line %lu, column %lu", why, (unsigned long)XML_GetCurrentLineNumber(c.parser),
                 (unsigned long)XML_GetCurrentColumnNumber(c.parser));
        rc = HK_EINVAL;
    }
    XML_ParserFree(c.parser);
    return rc;
}
