#!/usr/bin/env bash
# Firmware type-checking stubs: micropython-esp32-stubs (pinned) into ./typings for pyright
# (tools/lint.d/firmware.sh). Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
PIN="micropython-esp32-stubs==1.29.0.post1"
stamp="typings/.havel-stubs"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$PIN" ]; then
    exit 0
fi
rm -rf typings
.venv/bin/python -m pip install -q --disable-pip-version-check --no-compile --target typings "$PIN"
echo "$PIN" > "$stamp"
