#!/usr/bin/env bash
# Set Auteur up in ./.venv and run the sample production on the embedded defaults
# (embedded Postgres + pgvector, draft renderer, offline sample model).
# Arguments go to `auteur demo`, e.g. --auto-approve.
set -euo pipefail
cd "$(dirname "$0")/.."
"${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install -qq --disable-pip-version-check -e .
exec .venv/bin/auteur demo "$@"
