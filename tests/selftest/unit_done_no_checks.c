/*
 * unit_done_no_checks.c: calls unit.h's unit_done() without running a check.
 * ctest expects it to exit non-zero: it proves unit_done() refuses zero checks.
 */
#include "unit.h"

int main(void)
{
    return unit_done();
}
