# The two commands of the README: `make demo` and `make test`. Both set themselves up.
.PHONY: setup test lint demo bench wheel clean

VENV := .venv
PY := $(VENV)/bin/python

setup:
	@bash tools/bootstrap.sh

test: setup
	@bash tools/lint.sh
	# two workers, one test file each at a time (files share module fixtures: brokers, boards, a browser)
	$(PY) -m pytest -p no:cacheprovider -q -n 2 --dist loadfile --durations=25 tests

lint: setup
	@bash tools/lint.sh

# `make demo ROOFS=2`: several roofs sharing one Redis (docs/multiroof.md) instead of the one-roof demo
demo: setup
ifeq ($(ROOFS),)
	$(VENV)/bin/havel demo
else
	$(PY) -m havel.gateway.network.shared.demo --roofs $(ROOFS)
endif

# the installable wheel (hw/ and firmware/ inside), for a roof or a Lab laptop without a checkout
wheel: setup
	$(PY) -m pip wheel --no-deps -q -w dist .

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf dist $(VENV) tools/npm/node_modules .build typings typings-rp2
