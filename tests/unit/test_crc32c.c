/* test_crc32c.c: CRC-32C against published check values, chaining, and the table against the instruction. */
#include "crc32c.h"
#include "random.h"
#include "unit.h"

/* RFC 3720 appendix B.4 and the usual "123456789" check value. */
static void test_vectors(void)
{
    uint8_t buf[48];
    CHECK_INT(hk_crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_INT(hk__crc32c_sw(0, "123456789", 9), 0xE3069283u);
    CHECK_INT(hk_crc32c(0, "", 0), 0);
    memset(buf, 0, 32);
    CHECK_INT(hk_crc32c(0, buf, 32), 0x8A9136AAu);
    CHECK_INT(hk__crc32c_sw(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, 32);
    CHECK_INT(hk_crc32c(0, buf, 32), 0x62A8AB43u);
    CHECK_INT(hk__crc32c_sw(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    CHECK_INT(hk_crc32c(0, buf, 32), 0x46DD794Eu);
    CHECK_INT(hk__crc32c_sw(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    CHECK_INT(hk_crc32c(0, buf, 32), 0x113FDB5Cu);
    CHECK_INT(hk__crc32c_sw(0, buf, 32), 0x113FDB5Cu);
    /* An iSCSI SCSI Read (10) command PDU. */
    static const uint8_t pdu[48] = {0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                    0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
                                    0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
                                    0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    CHECK_INT(hk_crc32c(0, pdu, sizeof(pdu)), 0xD9963A56u);
    CHECK_INT(hk__crc32c_sw(0, pdu, sizeof(pdu)), 0xD9963A56u);
}

/* Any split of the input gives the same CRC, and both implementations agree at every length and alignment. */
static void test_chaining_and_agreement(void)
{
    static uint8_t data[1100];
    hk_random(data, sizeof(data));
    uint32_t whole = hk_crc32c(0, data, 1000);
    int split_ok = 0, agree = 0;
    for (size_t cut = 0; cut <= 1000; cut += 7)
        split_ok += hk_crc32c(hk_crc32c(0, data, cut), data + cut, 1000 - cut) == whole;
    CHECK_INT(split_ok, 143);
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len < 300; len++)
            agree += hk_crc32c(0, data + off, len) == hk__crc32c_sw(0, data + off, len);
    CHECK_INT(agree, 8 * 300);
    /* A single flipped bit changes it. */
    data[500] ^= 4;
    CHECK(hk_crc32c(0, data, 1000) != whole);
}

int main(void)
{
    test_vectors();
    test_chaining_and_agreement();
    return unit_done();
}
