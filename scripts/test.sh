#!/usr/bin/env bash
# Set Auteur and its test tools up in ./.venv, lint, and run the whole test suite.
# Arguments go to pytest, e.g. -k gates.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's Chromium for the browser tests: Playwright drives it and never downloads one.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "The browser tests need Chromium: sudo apt-get install chromium" >&2
    exit 1
  fi
fi

"${PYTHON:-python3}" -m venv .venv
# --no-compile: Python compiles what the tests import as they import it; compiling all of
# every installed package up front took a fifth of the install.
.venv/bin/python -m pip install -qq --no-compile --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Two test processes (pytest-xdist), a file each at a time: one alone leaves a core idle
# while it waits on its servers, subprocesses and Postgres. The 15 slowest tests are listed.
exec .venv/bin/python -m pytest --numprocesses=auto --maxprocesses=2 --dist=loadfile \
  --durations=15 "$@"
