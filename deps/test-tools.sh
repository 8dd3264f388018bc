#!/bin/sh
# Installs the test tools that Debian 12 does not package (see deps/README.md):
# the OpenAPI 3.1 validator tests/e2e/test_openapi.py checks src/api/openapi.json
# with, from npm, pinned, into a fixed place outside the repository
# ($HOOKD_TEST_TOOLS, default /opt/hookd-test-tools). Node.js and npm come from
# Debian when node is missing. Called by deps/install.sh; the tests never fetch.
# Idempotent: when everything is present it prints nothing and exits 0.
set -eu

TOOLS="${HOOKD_TEST_TOOLS:-/opt/hookd-test-tools}"
# name@version, one a line; bump the version here to upgrade.
NPM_TOOLS="@seriousme/openapi-schema-validator@2.11.0"

need_debian=""
command -v node >/dev/null 2>&1 || need_debian="nodejs npm"
[ -z "$need_debian" ] && ! command -v npm >/dev/null 2>&1 && need_debian="npm"

need_npm=""
for t in $NPM_TOOLS; do
    name="${t%@*}"
    want="${t##*@}"
    manifest="$TOOLS/node_modules/$name/package.json"
    have=$(sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$manifest" 2>/dev/null | head -n 1)
    [ "$have" = "$want" ] || need_npm="$need_npm $t"
done

[ -z "$need_debian" ] && [ -z "$need_npm" ] && exit 0

writable="$TOOLS"
[ -d "$TOOLS" ] || writable=$(dirname "$TOOLS")
if [ "$(id -u)" != 0 ] && { [ -n "$need_debian" ] || [ ! -w "$writable" ]; }; then
    echo "deps/test-tools.sh: missing:${need_debian:+ $need_debian (Debian)}$need_npm (run as root to install)" >&2
    exit 1
fi

if [ -n "$need_debian" ]; then
    echo "deps/test-tools.sh: installing $need_debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $need_debian >&2
fi

echo "deps/test-tools.sh: installing$need_npm into $TOOLS" >&2
mkdir -p "$TOOLS"
[ -f "$TOOLS/package.json" ] || printf '{\n  "name": "hookd-test-tools",\n  "private": true\n}\n' >"$TOOLS/package.json"
# shellcheck disable=SC2086
npm install --prefix "$TOOLS" --save-exact --no-audit --no-fund --loglevel=error $need_npm >&2
