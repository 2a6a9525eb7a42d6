#!/usr/bin/env bash
# Set Auteur and its test tools up in ./.venv, lint, and run the whole test suite.
# Arguments go to pytest, e.g. -k gates.
set -euo pipefail
cd "$(dirname "$0")/.."
"${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install -qq --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
