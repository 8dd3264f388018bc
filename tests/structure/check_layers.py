#!/usr/bin/env python3
"""Checks the shape of src/ that the layered build relies on.

  check_layers.py SRC_DIR          exit 0 when every rule holds, 1 naming each breach

Rules (src/README.md explains them):
  1. A file includes headers of its own layer and of the layers below only
     (the build enforces this through include paths; this names the breach).
  2. Above the state layer, only the seam's public headers of state are
     included (store.h, model.h, auth.h): tables, codecs and engines stay
     inside it.
  3. Only the state layer includes a database client's header (lmdb.h,
     libpq-fe.h).
  4. No include cycle among hookd's own headers.
  5. No source file over MAX_LINES lines.
"""
import os
import re
import sys

LAYERS = ["util", "net", "state", "services", "api", "app"]
# pg_migrate.h: the cluster schema's migrations, which `hookd migrate` runs (app/cli.c) before any store opens.
STATE_PUBLIC = {"store.h", "model.h", "auth.h", "pg_migrate.h"}
DATABASE_HEADERS = {"lmdb.h", "libpq-fe.h"}
MAX_LINES = 900
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def sources(src):
    for layer in LAYERS:
        d = os.path.join(src, layer)
        for name in sorted(os.listdir(d)):
            if name.endswith((".c", ".h")):
                yield layer, name, os.path.join(d, name)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check_layers.py SRC_DIR")
    src = sys.argv[1]
    home = {}  # header name -> layer
    files = list(sources(src))
    for layer, name, _ in files:
        if name.endswith(".h"):
            if name in home:
                print("%s/%s: header name also used in %s/" % (layer, name, home[name]))
            home[name] = layer
    breaches = []
    graph = {}
    for layer, name, path in files:
        text = open(path, encoding="utf-8").read()
        nlines = text.count("\n")
        if nlines > MAX_LINES:
            breaches.append("%s/%s: %d lines (at most %d)" % (layer, name, nlines, MAX_LINES))
        rank = LAYERS.index(layer)
        deps = []
        for kind, inc in INCLUDE.findall(text):
            base = os.path.basename(inc)
            if base in DATABASE_HEADERS and layer != "state":
                breaches.append("%s/%s: includes %s; only src/state talks to a database" % (layer, name, inc))
            if kind != '"' or inc not in home:
                continue
            target = home[inc]
            if LAYERS.index(target) > rank:
                breaches.append("%s/%s: includes %s of the higher layer %s/" % (layer, name, inc, target))
            if target == "state" and rank > LAYERS.index("state") and inc not in STATE_PUBLIC:
                breaches.append("%s/%s: includes state's internal %s (above state: %s)" %
                                (layer, name, inc, ", ".join(sorted(STATE_PUBLIC))))
            if name.endswith(".h"):
                deps.append(inc)
        if name.endswith(".h"):
            graph[name] = deps
    # Include cycles among headers: depth-first search with colours.
    colour = {}
    stack = []

    def visit(h):
        colour[h] = 1
        stack.append(h)
        for d in graph.get(h, []):
            if colour.get(d) == 1:
                breaches.append("include cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            elif colour.get(d) is None:
                visit(d)
        stack.pop()
        colour[h] = 2

    for h in sorted(graph):
        if colour.get(h) is None:
            visit(h)
    for b in breaches:
        print(b)
    print("%d files checked, %d breach%s" % (len(files), len(breaches), "" if len(breaches) == 1 else "es"))
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
