#!/usr/bin/env bash
# Firmware type-checking stubs: micropython-esp32-stubs (pinned) into ./typings and micropython-rp2-stubs
# into ./typings-rp2 for pyright
# (tools/lint.d/firmware.sh). Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
install_stubs() {  # install_stubs DIR PIN
    local dir=$1 pin=$2 stamp="$1/.havel-stubs"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pin" ]; then
        return 0
    fi
    rm -rf "$dir"
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-compile --target "$dir" "$pin"
    echo "$pin" > "$stamp"
}
install_stubs typings "micropython-esp32-stubs==1.29.0.post1"     # ESP32-S3 boards (Heltec, T-Beam, TTGO)
install_stubs typings-rp2 "micropython-rp2-stubs==1.29.0.post1"   # Raspberry Pi Pico
