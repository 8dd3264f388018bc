#!/bin/sh
# Installs, from Debian 12 packages only, what hookd needs to build, run and
# test, plus any packages named as arguments (bench/setup.sh names its own).
# Idempotent: when everything is present it prints nothing and exits 0.
set -eu

PKGS="cmake ninja-build pkg-config gcc libc6-dev ca-certificates
libuv1-dev libmbedtls-dev liblmdb-dev lmdb-utils node-llhttp libjansson-dev libexpat1-dev libc-ares-dev
python3 openssl curl $*"
# Test tools: python3-jsonschema checks answers against src/api/openapi.json,
# systemd's systemd-analyze checks conf/hookd.service, python3-prometheus-client
# parses GET /metrics (tests/e2e/test_metrics.py, run by /usr/bin/python3).
PKGS="$PKGS python3-jsonschema systemd python3-prometheus-client"
# The fuzz harnesses of tests/fuzz/: clang with its libFuzzer runtime.
PKGS="$PKGS clang libclang-rt-14-dev"
# Cluster mode (deps/README.md): the PostgreSQL client library hookd links,
# the server the tests start in a temporary directory, and the load balancer
# of the cluster test.
PKGS="$PKGS libpq-dev postgresql-15 haproxy"
# The console's browser test (tests/e2e/test_console.py, run by /usr/bin/python3):
# headless Chromium driven through chromedriver by Selenium.
PKGS="$PKGS chromium chromium-driver python3-selenium"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
done

# The test tools that only npm has, each installed once outside the repository.
"$(dirname "$0")/test-tools.sh"

[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "deps/install.sh: missing packages:$missing (run as root to install)" >&2
    exit 1
fi

echo "deps/install.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
