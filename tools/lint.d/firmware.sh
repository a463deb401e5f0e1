#!/usr/bin/env bash
# Firmware type check: pyright on firmware/ (host/ excluded: it is CPython/test-only code) against
# micropython-esp32-stubs in ./typings (installed by tools/bootstrap.d/firmware.sh).
# mpy-cross compilation of every firmware file is a pytest test (tests/firmware/test_mpy_cross.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -f typings/.havel-stubs ] || [ ! -f typings-rp2/.havel-stubs ]; then
    bash tools/bootstrap.d/firmware.sh
fi
for cfg in firmware/pyrightconfig.json firmware/pyrightconfig.rp2.json; do  # ESP32 stubs, then RP2040
    if ! out=$(.venv/bin/pyright -p "$cfg" 2>&1); then
        echo "$out" >&2
        echo "lint: pyright ($cfg) found type errors in firmware/" >&2
        exit 1
    fi
done
