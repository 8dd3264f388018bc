"""Runs a command that must FAIL with a given message; exits 0 only then.

usage: expect_refusal.py REGEX COMMAND [ARGS...]

Used by the harness self-tests: a check proves itself by refusing a run that
would otherwise pass. A command that cannot even start (missing binary) is not
a refusal and fails the self-test.
"""
import re
import subprocess
import sys


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    pattern, cmd = argv[0], argv[1:]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.decode("utf-8", "replace")
    sys.stdout.write(out)
    if p.returncode == 0:
        print("expect_refusal: %s exited 0; it should have been refused" % " ".join(cmd))
        return 1
    if not re.search(pattern, out):
        print("expect_refusal: %s failed (%d) but without the message /%s/" % (" ".join(cmd), p.returncode, pattern))
        return 1
    print("expect_refusal: refused as expected (exit %d)" % p.returncode)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
