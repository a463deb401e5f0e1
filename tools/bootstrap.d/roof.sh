#!/usr/bin/env bash
# Debian packages for the rooftop-gateway tests (gateway setup and power), installed when missing and root:
#   nut-server, nut-client  a real upsd with the dummy-ups driver, and upsc, for the power tests
#   gpiod                   gpioset/gpioinfo, which the generated concentrator reset script calls
#   systemd                 systemd-analyze, which checks the generated units, and systemd-sysusers, which
#                           creates the gateway's system user
#   pipx                    the README's roof install (`pipx install 'havel[gateway]'`), run by a test
set -euo pipefail
need=()
[ -x /sbin/upsd ] || [ -x /usr/sbin/upsd ] || command -v upsd >/dev/null 2>&1 || need+=(nut-server)
command -v upsc >/dev/null 2>&1 || need+=(nut-client)
command -v gpioset >/dev/null 2>&1 || need+=(gpiod)
{ command -v systemd-analyze && command -v systemd-sysusers; } >/dev/null 2>&1 || need+=(systemd)
command -v pipx >/dev/null 2>&1 || need+=(pipx)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${need[*]}"
    apt-get update -qq >/dev/null
    # (Debian's nut.conf says MODE=none, so no system upsd starts: the tests run their own)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
    echo "bootstrap: missing ${need[*]} (install them with apt-get as root; the power, setup and pipx tests skip without them)" >&2
fi
