#!/usr/bin/env bash
# Set Auteur up in ./.venv and run the sample production on the embedded defaults
# (embedded Postgres + pgvector, draft renderer, offline sample model).
# Arguments go to `auteur demo`, e.g. --auto-approve.
# In a terminal, the web client is then served at http://127.0.0.1:8123/ until Ctrl-C
# (AUTEUR_DEMO_SERVE=0 skips that; without a terminal, as in CI, the script just ends).
set -euo pipefail
cd "$(dirname "$0")/.."
"${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install -qq --disable-pip-version-check -e .
.venv/bin/auteur demo "$@"
if [ -t 1 ] && [ "${AUTEUR_DEMO_SERVE:-1}" != 0 ]; then
  echo
  echo "Web client: open the address below to make the next production in the browser"
  echo "(Ctrl-C stops the server; everything is kept in .auteur/)."
  exec .venv/bin/auteur serve
fi
