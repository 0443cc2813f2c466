#!/usr/bin/env bash
# Download (or build) the wheels the GPU check carries to a device machine that has no network:
# benchmarks/gpu_wheels.txt, for CPython 3.12 on manylinux x86_64, into .gpu_wheels/ (ignored by
# git), within the 64 MiB that travel with the working tree. Prints what was carried and what was
# left out; .gpu_wheels/manifest.json records both (benchmarks/gpu_check.sh copies it into the
# check's JSON). Needs the project's .venv (scripts/setup.sh): deepspeed's sdist builds with its
# torch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
python=.venv/bin/python
[ -x "$python" ] || { echo "fetch_gpu_wheels.sh: run scripts/setup.sh first (.venv)" >&2; exit 1; }
exec "$python" benchmarks/gpu_wheels.py fetch --dest .gpu_wheels
