"""Runs one unit test binary for ctest and fails unless it really tested something.

A unit test passes only when it exits 0 AND its last line of output is the
closing line of unit.h's unit_done() with at least one check passed and none
failed: "N passed, 0 failed" with N > 0. A binary that returns 0 without
running a check (an emptied main, a forgotten unit_done) fails.
"""
import re
import subprocess
import sys


def main(argv):
    if len(argv) < 1:
        print("usage: run_unit.py BINARY [ARGS...]", file=sys.stderr)
        return 2
    p = subprocess.run(argv, stdout=subprocess.PIPE)
    out = p.stdout.decode("utf-8", "replace")
    sys.stdout.write(out)
    sys.stdout.flush()
    if p.returncode != 0:
        print("run_unit: %s exited %d" % (argv[0], p.returncode))
        return 1
    lines = out.strip().splitlines()
    m = re.fullmatch(r"(\d+) passed, (\d+) failed", lines[-1].strip()) if lines else None
    if m is None:
        print("run_unit: %s did not print its closing line \"N passed, 0 failed\"" % argv[0])
        return 1
    if int(m.group(1)) == 0:
        print("run_unit: %s ran no checks: a unit test that checks nothing must not pass" % argv[0])
        return 1
    if int(m.group(2)) != 0:
        print("run_unit: %s reported failed checks but exited 0" % argv[0])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
