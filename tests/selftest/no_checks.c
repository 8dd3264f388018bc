/*
 * no_checks.c: a unit test binary that checks nothing and exits 0. ctest runs
 * it through tests/unit/run_unit.py and expects that run to FAIL: it proves
 * the runner refuses a test that passes without checking anything.
 * With -DCLOSING_LINE it prints unit_done()'s closing line for zero checks.
 */
#include <stdio.h>

int main(void)
{
#ifdef CLOSING_LINE
    printf("0 passed, 0 failed\n");
#endif
    return 0;
}
