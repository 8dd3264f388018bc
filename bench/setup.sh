#!/bin/sh
# Installs what bench/run needs beyond deps/install.sh: nginx, whose
# `return 204` is the ceiling the figures are compared with and whose
# `proxy_pass` is the relay end to end is compared with, and wrk for
# `bench/run --wrk`, a cross-check of the generator. Debian 12 packages
# only; idempotent: silent when everything is present.
set -eu

here=$(dirname "$0")

# The nginx package would start a system nginx on port 80; the benchmark
# runs its own. Keep invoke-rc.d from starting it while it is installed,
# unless a policy already decides.
policy=/usr/sbin/policy-rc.d
made_policy=no
if ! dpkg-query -W -f='${Status}\n' nginx 2>/dev/null | grep -q '^install ok installed$' &&
    [ ! -e "$policy" ] && [ "$(id -u)" = 0 ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=yes
fi
cleanup() { if [ "$made_policy" = yes ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

sh "$here/../deps/install.sh" nginx wrk
