#!/usr/bin/env bash
# The GPU check in one command (issue 16): install the carried wheels the machine's image lacks,
# then run every accelerator step of benchmarks/gpu_check.py, time-boxed, into one JSON.
#
#   bash benchmarks/gpu_check.sh OUT_DIR [gpu_check.py options]     # on a CUDA machine
#   bash benchmarks/gpu_check.sh OUT_DIR --dry-run                  # CPU, tiny sizes
#
# Wheels: `bash scripts/fetch_gpu_wheels.sh` here fills .gpu_wheels/ (carry it along); without
# them the check runs on the image's packages and records what could not run. Writes
# OUT_DIR/gpu_check_<device>.json (commit it as benchmarks/results/gpu_check_<device>.json) and
# OUT_DIR/gpu_check.log. The whole run is stopped after GPU_CHECK_TIMEOUT seconds (default 540,
# the 9 minutes of issue 16); the JSON keeps every step that finished.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
out=$1
shift
mkdir -p "$out"
python=${PYTHON:-python3}
site=${GPU_CHECK_SITE:-/tmp/midilm-gpu-site}
budget=${GPU_CHECK_TIMEOUT:-540}
start=$(date +%s)

# 1. carried wheels (before PYTHONPATH points at them: compare with the image's own versions)
"$python" benchmarks/gpu_wheels.py install --wheels .gpu_wheels --target "$site" \
  --report "$site.install.json" >"$out/gpu_check.log" 2>&1 ||
  echo "gpu_check.sh: wheel install failed (see the log); running on the image's packages" >&2

# 2. the steps, inside what is left of the budget
export PYTHONPATH="$site:$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 MIDILM_NO_PROGRESS=1 HF_HUB_OFFLINE=1 WANDB_MODE=disabled
export TOKENIZERS_PARALLELISM=false
# before cuBLAS starts, as the deterministic steps (the stage's settings, resume) want it
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}
case " $* " in *" --dry-run "*) ;; *) export DS_ACCELERATOR=cuda ;; esac
commit=${GPU_CHECK_COMMIT:-$(git rev-parse HEAD 2>/dev/null || true)}
left=$((budget - ($(date +%s) - start)))
timeout --signal=TERM --kill-after=15 "$left" \
  "$python" benchmarks/gpu_check.py --out "$out" --install-report "$site.install.json" \
  ${commit:+--commit "$commit"} "$@" 2>&1 | tee -a "$out/gpu_check.log"
status=${PIPESTATUS[0]}
[ "$status" = 124 ] && echo "gpu_check.sh: stopped after $budget s; the JSON holds the finished steps" >&2
exit "$status"
