/*
 * fuzz.h: what every libFuzzer harness in tests/fuzz/ shares. A harness is
 * one fuzz_<name>.c defining LLVMFuzzerTestOneInput; it checks invariants
 * with FUZZ_CHECK, which aborts (a crash the fuzzer reports and keeps).
 */
#ifndef HK_FUZZ_H
#define HK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/** Aborts with the failed condition when cond does not hold. */
#define FUZZ_CHECK(cond)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                               \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

/** The input as a malloc'd NUL-terminated string (bytes after a NUL are cut off by C string APIs). */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/**
 * Splits the input at the first occurrence of sep: *a and *b become
 * malloc'd strings of the two parts (b empty when sep does not occur).
 */
static inline void fuzz_split(const uint8_t *data, size_t size, char sep, char **a, char **b)
{
    const uint8_t *p = memchr(data, sep, size);
    size_t n = p ? (size_t)(p - data) : size;
    *a = fuzz_str(data, n);
    *b = p ? fuzz_str(p + 1, size - n - 1) : fuzz_str(data, 0);
}

#endif
