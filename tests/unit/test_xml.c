/* test_xml.c: the XML check: well-formed documents pass, DTDs never do, reasons name the mistake. */
#include "unit.h"
#include "xml.h"

static int check(const char *text, char *why, size_t len)
{
    why[0] = '\0';
    return hk_xml_check(text, strlen(text), why, len);
}

static void ok(const char *text)
{
    char why[256];
    int rc = check(text, why, sizeof(why));
    if (rc != 0)
        fprintf(stderr, "refused %s: %s\n", text, why);
    CHECK_INT(rc, 0);
}

static void bad(const char *text, const char *words)
{
    char why[256];
    int rc = check(text, why, sizeof(why));
    if (rc != HK_EINVAL)
        fprintf(stderr, "accepted %s\n", text);
    CHECK_INT(rc, HK_EINVAL);
    if (strstr(why, words) == NULL)
        fprintf(stderr, "%s: \"%s\" lacks \"%s\"\n", text, why, words);
    CHECK(strstr(why, words) != NULL);
    CHECK(strstr(why, " at line ") != NULL);
}

static void test_well_formed(void)
{
    ok("<a/>");
    ok("<a>x</a>");
    ok("<?xml version=\"1.0\"?><!-- c --><Incident id=\"7\"><Subject>A &amp; B</Subject><x/></Incident>");
    ok("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a b='1' c=\"&lt;&#65;&#x42;\"><![CDATA[<not a tag>]]></a>\n");
    ok("\xef\xbb\xbf<a/>"); /* a byte order mark */
    ok("<a>caf\xc3\xa9 \xf0\x9f\x98\x80</a>");
    ok("<ns:a xmlns:ns=\"urn:x\"><ns:b/></ns:a>");
    ok("  <a/>  <!-- after -->  <?pi x?>\n");
    /* A declaration naming another encoding is still read as UTF-8. */
    ok("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>caf\xc3\xa9</a>");
}

static void test_mistakes(void)
{
    bad("", "no root element");
    bad("   ", "no root element");
    bad("{\"a\": 1}", "at line 1");
    bad("<a><b></a></b>", "does not match its start tag");
    bad("<a/><b/>", "a second root element");
    bad("<a/>text", "text after the root element");
    bad("<a>", "the document ends inside an element");
    bad("<a><b>x</b>", "the document ends inside an element");
    bad("<a b=1/>", "at line 1");
    bad("<a>&nbsp;</a>", "unknown entity");
    bad("<a>&#0;</a>", "at line 1");
    bad("<a>\xff</a>", "at line 1"); /* not UTF-8 */
    bad("<a>\n<b>\n</c></a>", "at line 3");
}

static void test_no_dtd(void)
{
    bad("<!DOCTYPE a><a/>", "document type declarations are not accepted");
    bad("<?xml version=\"1.0\"?>\n<!DOCTYPE a SYSTEM \"file:///etc/passwd\"><a/>", "document type declarations");
    /* Billion laughs: refused at the DOCTYPE, before any entity exists. */
    bad("<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE lolz [\n"
        " <!ENTITY lol \"lol\">\n"
        " <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
        " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
        "]>\n"
        "<lolz>&lol3;</lolz>",
        "document type declarations are not accepted at line 2");
    /* External entities: the same door. */
    bad("<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><a>&x;</a>", "document type declarations");
}

static void test_depth(void)
{
    char doc[HK_XML_MAX_DEPTH * 8 + 64];
    size_t n = 0;
    for (int i = 0; i < HK_XML_MAX_DEPTH; i++)
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "<a>");
    for (int i = 0; i < HK_XML_MAX_DEPTH; i++)
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "</a>");
    ok(doc);
    n = 0;
    for (int i = 0; i <= HK_XML_MAX_DEPTH; i++)
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "<a>");
    bad(doc, "nested too deeply");
}

static void test_embedded_nul_and_cut_reason(void)
{
    char why[256];
    CHECK_INT(hk_xml_check("<a>\0</a>", 8, why, sizeof(why)), HK_EINVAL);
    char tiny[8];
    CHECK_INT(hk_xml_check("<a>", 3, tiny, sizeof(tiny)), HK_EINVAL);
    CHECK_INT(strlen(tiny), 7);
}

int main(void)
{
    test_well_formed();
    test_mistakes();
    test_no_dtd();
    test_depth();
    test_embedded_nul_and_cut_reason();
    return unit_done();
}
