#!/usr/bin/env bash
# Quickstart 1: set up .venv, then run the whole DVC pipeline on the embedded default (offline).
# Extra arguments go to `dvc repro` (e.g. `scripts/repro.sh -s train`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
[ -d .git ] || { echo "midilm: run from a git clone (DVC needs git)" >&2; exit 1; }
dvc repro "$@"
echo
echo "Tables: reports/tables/ (T1_datasets, T2_tokenizers, T3_augmentation, T4_models, T5_music_metrics, T7_complexity: .md .csv .tex)"
echo "Metrics: dvc metrics show    Plots: dvc plots show"
