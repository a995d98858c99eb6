# Quick start: `make demo` (install + main job) and `make test` (install + tests). Needs only Python >= 3.10 and git.
# uv is run as `python3 -m uv`, which targets its parent interpreter unless told otherwise: hence --python.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(PYTHON) -m uv
PYTEST_ARGS ?=

.PHONY: install demo test test-slow lint clean

$(VENV)/.installed: pyproject.toml plugins/medgen-plugin-example/pyproject.toml
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@test -x $(PY) || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --python $(PY) -e ".[dev,content,text]" -e plugins/medgen-plugin-example
	@touch $@

install: $(VENV)/.installed

# The main job on the embedded phantom data; ends by printing where its outputs are.
demo: install
	$(PY) -m medgen demo --out outputs/demo

# Default suite (slow tests excluded), two workers; a test file stays on one worker.
test: install
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# Tests marked slow (longer trainings); not part of CI.
test-slow: install
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check medgen tests benchmarks

clean:
	rm -rf $(VENV) outputs .pytest_cache
