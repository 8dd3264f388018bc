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
    return unit_done();
}
