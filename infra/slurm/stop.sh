#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by infra/slurm/start.sh (munged is left running).
set -uo pipefail
scancel --user="$(id -un)" 2>/dev/null || true
for daemon in slurmd slurmctld; do
  pkill -x "$daemon" 2>/dev/null && echo "slurm-stop: stopped $daemon" >&2
done
for _ in $(seq 1 20); do pgrep -x 'slurmd|slurmctld' >/dev/null || exit 0; sleep 0.5; done
echo "slurm-stop: daemons still running after 10 s" >&2; exit 1
