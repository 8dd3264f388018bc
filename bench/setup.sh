#!/bin/sh
# Installs what bench/run needs beyond deps/install.sh: nginx, whose
# `return 204` is the ceiling the figures are compared with, and wrk for
# `bench/run --wrk`, a cross-check of the generator. Debian 12 packages
# only; idempotent: silent when everything is present.
set -eu

here=$(dirname "$0")
sh "$here/../deps/install.sh"

PKGS="nginx wrk"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "bench/setup.sh: missing packages:$missing (run as root to install)" >&2
    exit 1
fi

echo "bench/setup.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# The package would start a system nginx on port 80; the benchmark runs its
# own. Keep invoke-rc.d from starting it unless a policy already decides.
policy=/usr/sbin/policy-rc.d
made_policy=no
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=yes
fi
cleanup() { if [ "$made_policy" = yes ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
apt-get update -qq >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
