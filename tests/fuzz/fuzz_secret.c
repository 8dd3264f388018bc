/*
 * fuzz_secret.c: webhook secrets (services/signature.c): the whsec_ base64
 * key of Standard Webhooks and plain secrets, both signatures. Input: the
 * secret. A secret either signs with "v1," and 44 base64 characters or is
 * refused with HK_EINVAL; the prepared signer agrees with the one-shot call.
 */
#include "fuzz.h"
#include "signature.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *secret = fuzz_str(data, size);
    static const char body[] = "{\"EventName\":\"contact.created\"}";
    char so[HK_SIG_B64_LEN], so2[HK_SIG_B64_LEN];
    char std[HK_SIG_B64_LEN + 3], std2[HK_SIG_B64_LEN + 3];

    hk_sig_superoffice(secret, body, sizeof(body) - 1, so);
    FUZZ_CHECK(strlen(so) == HK_SIG_B64_LEN - 1);
    int rc = hk_sig_standard(secret, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1700000000, body, sizeof(body) - 1, std,
                             sizeof(std));
    FUZZ_CHECK(rc == 0 || rc == HK_EINVAL);
    if (rc == 0)
        FUZZ_CHECK(strncmp(std, "v1,", 3) == 0 && strlen(std) == HK_SIG_B64_LEN + 2);

    if (secret[0] != '\0') {
        hk_signer *s = hk_signer_new(secret);
        hk_signer_superoffice(s, body, sizeof(body) - 1, so2);
        FUZZ_CHECK(strcmp(so, so2) == 0);
        int rc2 = hk_signer_standard(s, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1700000000, body, sizeof(body) - 1, std2,
                                     sizeof(std2));
        FUZZ_CHECK(rc2 == rc);
        if (rc == 0)
            FUZZ_CHECK(strcmp(std, std2) == 0);
        hk_signer_free(s);
    }
    free(secret);
    return 0;
}
