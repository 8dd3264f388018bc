/*
 * crc32c.h: CRC-32C (Castagnoli, the polynomial of iSCSI, ext4 and most
 * write-ahead logs), for checking records read back from disk.
 */
#ifndef HK_CRC32C_H
#define HK_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/**
 * Extends crc (0 to start) over len bytes of data and returns the new
 * value: hk_crc32c(hk_crc32c(0, a, n), b, m) is the CRC of a followed by b.
 * Uses the SSE4.2 instruction when the CPU has it, a table otherwise; both
 * give the same result.
 */
uint32_t hk_crc32c(uint32_t crc, const void *data, size_t len);

/** The table-driven computation alone (what hk_crc32c falls back to), for tests. */
uint32_t hk__crc32c_sw(uint32_t crc, const void *data, size_t len);

#endif
