/*
 * fuzz_xml.c: the XML well-formedness check of Ivanti Execute bodies
 * (util/xml.c on libexpat). Input: the body. The check says yes or no with
 * a reason; a document type declaration is never accepted, so no entity is
 * ever expanded (a billion-laughs body must fail fast, not time out).
 */
#include "fuzz.h"
#include "xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    err[0] = '\0';
    int rc = hk_xml_check((const char *)data, size, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == HK_EINVAL);
    if (rc != 0)
        FUZZ_CHECK(err[0] != '\0' && strlen(err) < sizeof(err));
    /* A document that opens with a DTD is refused, whatever follows. */
    if (size >= 9 && memcmp(data, "<!DOCTYPE", 9) == 0)
        FUZZ_CHECK(rc == HK_EINVAL);
    return 0;
}
