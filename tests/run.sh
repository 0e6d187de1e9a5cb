#!/usr/bin/env bash
# The test suite: creates .venv (if missing), installs langtts with its dev extra, runs the checks (ruff check,
# ruff format --check, mypy; once, whatever the arguments), then pytest with the arguments. The result is pytest's
# exit code if it failed, else 1 if a check failed, else 0.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
LINTED=(langtts tests benchmarks agents)
checks=0
.venv/bin/ruff check "${LINTED[@]}" || checks=1
.venv/bin/ruff format --check "${LINTED[@]}" || checks=1
.venv/bin/mypy || checks=1  # [tool.mypy] in pyproject.toml: the langtts package
if [ "$checks" -ne 0 ]; then
  echo "tests/run.sh: a check failed (ruff check, ruff format --check or mypy; see above)" >&2
fi
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 0 ]; then
  status=$checks
fi
exit "$status"
