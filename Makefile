# Every check the project runs. `make check` before you commit.
PY := .venv/bin

.PHONY: setup test lint typecheck check bench compare

setup:
	python3 -m venv .venv && $(PY)/pip install -q -e ".[dev]"

test:
	$(PY)/pytest

lint:
	$(PY)/ruff check src tests bench
	$(PY)/ruff format --check src

typecheck:
	$(PY)/mypy

check: lint typecheck test

bench:
	$(PY)/python bench/runtime.py

compare:
	bench/compare
