#!/usr/bin/env bash
# Set Auteur and its test tools up in ./.venv, lint, and run the whole test suite.
# Arguments go to pytest, e.g. -k gates.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's Chromium for the browser tests (Playwright drives it and never downloads one), and
# Node.js for the official JS SDK's tests.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "The tests need ${missing[*]}: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
# The official JS SDK, at the version its lock file names: fetched while Python installs.
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error >/dev/null &
npm_ci=$!

"${PYTHON:-python3}" -m venv .venv
# uv (itself installed by pip) installs the same pinned ranges from PyPI in seconds, where pip
# spent two to three minutes resolving and compiling. Python compiles what the tests import.
.venv/bin/python -m pip install -qq --disable-pip-version-check 'uv>=0.13,<0.14'
.venv/bin/uv pip install --quiet --python .venv/bin/python -e '.[test]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
wait "$npm_ci"
# Python may keep the bytecode of what it compiles (the project's modules, pytest's rewritten
# tests), where PYTHONDONTWRITEBYTECODE is set: every process the tests start would compile them
# again.
unset PYTHONDONTWRITEBYTECODE
# Three test processes (pytest-xdist) on two cores, a file each at a time: each waits on its
# servers, subprocesses and Postgres for about a third of its time, so two left the cores
# idle. The files with the longest tests go first (tests/conftest.py), so that none is left
# running alone at the end. The 15 slowest tests are listed.
exec .venv/bin/python -m pytest --numprocesses=3 --dist=loadfile --no-loadscope-reorder \
  --durations=15 "$@"
