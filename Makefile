# Two commands for a fresh machine:
#   make demo   set up .venv and run the main job (the atlas report, quick mode) on built-in data
#   make test   set up .venv and run the test suite
# More: make report (the full atlas, under 30 minutes), make tour, make test-all, make lint
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo report tour test test-all lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/deepatlas report --quick --out atlas-report

report: $(STAMP)
	$(BIN)/deepatlas report --out atlas-report

tour: $(STAMP)
	$(BIN)/deepatlas tour

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m ''

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) runs .pytest_cache
