#!/usr/bin/env bash
# Quickstart 2: set up .venv, then run the whole test suite (unit + slow integration tests).
# Extra arguments go to pytest (e.g. `scripts/test.sh -m "not slow"`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
ruff check src flows tests benchmarks
exec pytest "$@"
