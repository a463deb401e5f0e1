# The two commands of the README: `make demo` and `make test`. Both set themselves up.
.PHONY: setup test lint demo bench clean

VENV := .venv
PY := $(VENV)/bin/python

setup:
	@bash tools/bootstrap.sh

test: setup
	@bash tools/lint.sh
	$(PY) -m pytest -p no:cacheprovider -q tests

lint: setup
	@bash tools/lint.sh

demo: setup
	$(VENV)/bin/havel demo

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) tools/npm/node_modules .build typings typings-rp2
