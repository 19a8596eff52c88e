# fedledger: `make demo` runs the whole pipeline on samples/, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= build/demo

.PHONY: demo test test-slow bench venv clean check-system

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

check-system:
	@$(PYTHON) -c "import ctypes.util, sys; missing=[l for l in ('pango-1.0','pangoft2-1.0') if not ctypes.util.find_library(l)]; \
	sys.exit(0) if not missing else (print('WeasyPrint needs Pango (missing: '+', '.join(missing)+'). On Debian/Ubuntu: sudo apt-get install -y libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core', file=sys.stderr), sys.exit(1))"

demo: check-system venv
	$(BIN)/fedledger demo --out $(DEMO_OUT)

test: venv
	$(BIN)/python -m pytest -q

test-slow: venv
	$(BIN)/python -m pytest -q -m slow

bench: venv
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
