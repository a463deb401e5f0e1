#!/usr/bin/env bash
# Debian's redis-server for the multi-roof tests (tests/support/redis.py starts its own on a free loopback
# port; no system service is needed), installed when missing and root. The Python client comes with the
# package's multiroof extra (in dev).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing redis-server"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    # the package starts a system Redis on port 6379 where a service manager runs: the tests do not use it
else
    echo "bootstrap: missing redis-server (install it with apt-get as root; the multi-roof tests skip without it)" >&2
fi
