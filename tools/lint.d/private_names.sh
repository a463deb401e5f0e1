#!/usr/bin/env bash
# No private names of other packages in the host code (core/ codecs/ gateway/ provisioning/): private
# attributes, modules and name-mangled names may change in any release of a library, so code that uses
# them pins it. The checker reads the source with ast (tools/check_private_names.py says what it finds);
# it is outside the `havel` package, so it is type-checked here.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/mypy --config-file pyproject.toml --no-error-summary tools/check_private_names.py || {
    echo "lint: mypy failed on tools/check_private_names.py" >&2; exit 1; }
.venv/bin/python tools/check_private_names.py core codecs gateway provisioning || {
    echo "lint: private names of other packages used (tools/check_private_names.py)" >&2; exit 1; }
