/* unit.h: a minimal assertion kit for the unit tests (one binary per module). */
#ifndef HK_UNIT_H
#define HK_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_failures;
static int unit_checks;

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        unit_checks++;                                                                                                 \
        if (!(cond)) {                                                                                                 \
            unit_failures++;                                                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                                   \
        }                                                                                                              \
    } while (0)

#define CHECK_STR(a, b)                                                                                                \
    do {                                                                                                               \
        const char *a_ = (a), *b_ = (b);                                                                               \
        unit_checks++;                                                                                                 \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                                                         \
            unit_failures++;                                                                                           \
            fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, a_ ? a_ : "(null)", b_ ? b_ : "(null)");  \
        }                                                                                                              \
    } while (0)

#define CHECK_INT(a, b)                                                                                                \
    do {                                                                                                               \
        long long a_ = (long long)(a), b_ = (long long)(b);                                                            \
        unit_checks++;                                                                                                 \
        if (a_ != b_) {                                                                                                \
            unit_failures++;                                                                                           \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, a_, b_);                     \
        }                                                                                                              \
    } while (0)

/* Prints the plain closing line and returns the exit code: 1 when a check
 * failed, and also when no check ran at all (a test that checks nothing must
 * not pass; ctest's tests/unit/run_unit.py insists on it too). */
static inline int unit_done(void)
{
    printf("%d passed, %d failed\n", unit_checks - unit_failures, unit_failures);
    if (unit_checks == 0)
        fprintf(stderr, "no checks ran\n");
    return unit_failures || unit_checks == 0 ? 1 : 0;
}

#endif
