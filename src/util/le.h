/*
 * le.h: fixed-width little-endian integers in byte buffers, for on-disk
 * layouts with fixed offsets (the write-ahead log's records and segment
 * heads, the checkpoint file). The typed records' codec (state/codec.h)
 * writes growable buffers in its own order.
 */
#ifndef HK_LE_H
#define HK_LE_H

#include <stdint.h>

/** Stores v at p, least significant byte first. */
static inline void hk_le_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/** Stores v at p, least significant byte first. */
static inline void hk_le_put64(uint8_t *p, uint64_t v)
{
    hk_le_put32(p, (uint32_t)v);
    hk_le_put32(p + 4, (uint32_t)(v >> 32));
}

/** The value hk_le_put32 stored at p. */
static inline uint32_t hk_le_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/** The value hk_le_put64 stored at p. */
static inline uint64_t hk_le_get64(const uint8_t *p)
{
    return (uint64_t)hk_le_get32(p) | (uint64_t)hk_le_get32(p + 4) << 32;
}

#endif
