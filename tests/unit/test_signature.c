/* Unit tests of the delivery signatures against independently computed values. */
#include "signature.h"
#include "unit.h"

int main(void)
{
    /* The Standard Webhooks specification's published example: secret
     * whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, id msg_p5jXN8AQM9LWM0D4loKWxJek,
     * timestamp 1614265330, body {"test": 2432232314}. */
    char out[64];
    const char *body = "{\"test\": 2432232314}";
    CHECK_INT(hk_sig_standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                              body, strlen(body), out, sizeof(out)),
              0);
    CHECK_STR(out, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");

    /* RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?". */
    char so[HK_SIG_B64_LEN];
    const char *data = "what do ya want for nothing?";
    hk_sig_superoffice("Jefe", data, strlen(data), so);
    /* 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843 in base64 */
    CHECK_STR(so, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");

    /* A non-whsec secret signs with its own bytes. */
    char a[64], b[64];
    CHECK_INT(hk_sig_standard("plain", "id", 1, "x", 1, a, sizeof(a)), 0);
    CHECK_INT(hk_sig_standard("plain", "id", 2, "x", 1, b, sizeof(b)), 0);
    CHECK(strcmp(a, b) != 0);
    CHECK(strncmp(a, "v1,", 3) == 0);
    CHECK_INT(hk_sig_standard("whsec_!!!notbase64", "id", 1, "x", 1, a, sizeof(a)), HK_EINVAL);

    /* A prepared signer gives what the one-shot functions give, every time it is used. */
    hk_signer *sg = hk_signer_new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    for (int i = 0; i < 3; i++) {
        CHECK_INT(
            hk_signer_standard(sg, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), out, sizeof(out)),
            0);
        CHECK_STR(out, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
    char so2[HK_SIG_B64_LEN];
    hk_sig_superoffice("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", data, strlen(data), so);
    hk_signer_superoffice(sg, data, strlen(data), so2);
    CHECK_STR(so2, so);
    /* Too small an output buffer is refused, not overrun. */
    CHECK_INT(hk_signer_standard(sg, "id", 1, "x", 1, out, 10), HK_EINVAL);
    hk_signer_free(sg);
    hk_signer_free(NULL);
    /* A whsec_ secret that does not decode still signs X-SuperOffice-Signature, but has no Standard key. */
    sg = hk_signer_new("whsec_!!!notbase64");
    hk_signer_superoffice(sg, "x", 1, so2);
    CHECK_INT(strlen(so2), 44);
    CHECK_INT(hk_signer_standard(sg, "id", 1, "x", 1, out, sizeof(out)), HK_EINVAL);
    hk_signer_free(sg);
    /* Base64 with room to spare, and refused without. */
    char b64[8];
    CHECK_INT(hk_base64("abcd", 4, b64, sizeof(b64)), HK_ETOOBIG); /* 8 characters and the NUL */
    CHECK_INT(hk_base64("abc", 3, b64, sizeof(b64)), 4);
    CHECK_STR(b64, "YWJj");
    return unit_done();
}
