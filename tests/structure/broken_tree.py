#!/usr/bin/env python3
"""Copies src/ into a temporary tree, breaks each rule of check_layers.py once,
and runs the check on it (its exit status and output are this script's), so a
self-test can prove that every rule fires.

usage: broken_tree.py SRC_DIR CHECK_SCRIPT
"""
import os
import shutil
import subprocess
import sys
import tempfile


def append(path, text):
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def main():
    src, check = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        tree = os.path.join(tmp, "src")
        shutil.copytree(src, tree)
        append(os.path.join(tree, "util", "buf.c"), '\n#include "app.h"\n')          # rule 1
        append(os.path.join(tree, "api", "api.c"), '\n#include "tables.h"\n')        # rule 2
        append(os.path.join(tree, "services", "engine.c"), "\n#include <lmdb.h>\n")  # rule 3
        append(os.path.join(tree, "util", "buf.h"), '\n#include "utf8.h"\n')         # rule 4: utf8.h includes buf.h
        append(os.path.join(tree, "util", "log.c"), "\n" * 1000)                     # rule 5
        p = subprocess.run([sys.executable, check, tree], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = p.stdout.decode()
        sys.stdout.write(out)
        for expected in ("includes app.h of the higher layer", "includes state's internal tables.h",
                         "only src/state talks to a database", "include cycle:", "lines (at most"):
            if expected not in out:
                print("broken_tree: the check did not report: " + expected)
                return 0  # not refused: the self-test fails
        return p.returncode


if __name__ == "__main__":
    sys.exit(main())
