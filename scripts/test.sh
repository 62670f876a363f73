#!/usr/bin/env bash
# Set up everything the tests need (idempotent) and run the whole suite: lint, format, pytest.
# Tests start their own throwaway embedded PostgreSQL + pgvector; nothing touches the demo's data.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
python -m pip install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} 2>&1 | grep -v "^WARNING: Location" || true
python -m pip install -q -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
python -c "import torch, django, catalog_search" # fail early and clearly if the install did not work
# Noto Color Emoji (demo artwork) and Debian's Chromium for the browser test (Playwright's own
# browser download is not used).
./scripts/system-packages.sh --browser
ruff check .
ruff format --check .
lint-imports  # the layers of docs/architecture.md (contracts in pyproject.toml)
python -m pytest "$@"
