#!/usr/bin/env bash
# Sets up everything the tests and the demo need on a fresh machine, idempotently:
# the virtual environment with the package and its dev extras, npm packages into tools/npm,
# Debian packages (when missing and we are root), then every fragment in tools/bootstrap.d/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
stamp="$VENV/.havel-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # Optional extras are installed for the tests when they install here; the core never needs them.
    "$VENV/bin/python" -m pip install -q -e ".[dev,reticulum]" || {
        echo "bootstrap: the reticulum extra did not install; installing without it (its tests will say so)" >&2
        "$VENV/bin/python" -m pip install -q -e ".[dev]"
    }
    touch "$stamp"
fi

# Debian packages: mosquitto (MQTT broker for the tests and demo), direwolf (software TNC for the relay tests).
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v direwolf >/dev/null 2>&1 || need+=(direwolf)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: installing ${need[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "bootstrap: missing ${need[*]} (install them with apt-get as root)" >&2
    fi
fi

# npm packages (MicroPython WebAssembly, lora-packet), pinned in tools/npm/package.json.
if command -v npm >/dev/null 2>&1; then
    if [ ! -d tools/npm/node_modules ] || [ tools/npm/package.json -nt tools/npm/node_modules ]; then
        (cd tools/npm && npm install --no-audit --no-fund --loglevel=error >/dev/null && touch node_modules)
    fi
else
    echo "bootstrap: npm not found; firmware tests under real MicroPython need Node.js and npm" >&2
fi

for frag in tools/bootstrap.d/*.sh; do
    [ -e "$frag" ] || continue
    bash "$frag"
done
