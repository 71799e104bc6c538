# cemkit — the two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# test files run in parallel, one file per worker process (module fixtures stay in one process)
TEST_WORKERS ?= 2

.PHONY: demo test lint typecheck lab bench screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)  ## generate a default data set, run the whole pipeline, write a report
	$(BIN)/cemkit demo --out demo-output

test: $(STAMP)  ## lint, type-check and run every test
	$(BIN)/ruff check cemkit tests benchmarks
	$(BIN)/ruff format --check cemkit tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check cemkit tests benchmarks
	$(BIN)/ruff format --check cemkit tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

lab: $(STAMP)  ## JupyterLab on notebooks/ with a kernel that has cemkit
	$(BIN)/python -m ipykernel install --sys-prefix --name cemkit --display-name "Python (cemkit)"
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)  ## run the benchmark suite; results go to benchmarks/RESULTS.md by hand
	$(BIN)/python -m benchmarks.run_all

screenshots: $(STAMP)  ## run every shipped notebook at its defaults; first screens to docs/screenshots/
	PYTHONPATH=$(CURDIR) $(BIN)/python docs/make_screenshots.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
