#!/usr/bin/env bash
# A local Prefect server + process worker with the midilm deployments, all on 127.0.0.1.
#   scripts/prefect_demo.sh         # start server and worker, deploy, trigger a smoke run
#   scripts/prefect_demo.sh stop    # stop the worker and the server
# State (SQLite, logs, pids) lives in .prefect/ in this repo (git-ignored by its own .gitignore).
# The smoke run rewrites this checkout's params.yaml to the smoke profile; `midilm params compose`
# (or `profile=default`) puts the default back.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PREFECT_HOME="$PWD/.prefect"
export PREFECT_API_URL=http://127.0.0.1:4200/api
export PREFECT_SERVER_API_HOST=127.0.0.1
export PREFECT_SERVER_API_PORT=4200
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export DO_NOT_TRACK=1
export MIDILM_REPO="$PWD"
export PATH="$PWD/.venv/bin:$PATH"
POOL=midilm-process
EXECUTOR=${MIDILM_EXECUTOR:-local}

log() { echo "prefect-demo: $*" >&2; }

stop_pid() {
  local file=$PREFECT_HOME/$1.pid
  if [ -f "$file" ] && kill -0 "$(cat "$file")" 2>/dev/null; then
    log "stopping $1 (pid $(cat "$file"))"
    kill "$(cat "$file")"
  fi
  rm -f "$file"
}

if [ "${1:-}" = stop ]; then
  stop_pid worker
  stop_pid server
  exit 0
fi

mkdir -p "$PREFECT_HOME"
printf '*\n' > "$PREFECT_HOME/.gitignore"

if ! curl -fsS "$PREFECT_API_URL/health" >/dev/null 2>&1; then
  log "starting the Prefect server (log: .prefect/server.log)"
  nohup prefect server start --host 127.0.0.1 --port 4200 >"$PREFECT_HOME/server.log" 2>&1 &
  echo $! >"$PREFECT_HOME/server.pid"
  for _ in $(seq 1 180); do
    curl -fsS "$PREFECT_API_URL/health" >/dev/null 2>&1 && break
    kill -0 "$(cat "$PREFECT_HOME/server.pid")" 2>/dev/null || {
      log "the server exited; see .prefect/server.log"; tail -n 20 "$PREFECT_HOME/server.log"; exit 1
    }
    sleep 1
  done
  curl -fsS "$PREFECT_API_URL/health" >/dev/null || { log "server not healthy after 180 s"; exit 1; }
fi
log "server healthy at $PREFECT_API_URL"

prefect work-pool inspect "$POOL" >/dev/null 2>&1 || prefect work-pool create "$POOL" --type process
prefect --no-prompt deploy --all

if ! { [ -f "$PREFECT_HOME/worker.pid" ] && kill -0 "$(cat "$PREFECT_HOME/worker.pid")" 2>/dev/null; }; then
  log "starting a process worker on $POOL (log: .prefect/worker.log)"
  nohup prefect worker start --pool "$POOL" --type process >"$PREFECT_HOME/worker.log" 2>&1 &
  echo $! >"$PREFECT_HOME/worker.pid"
fi

log "triggering a smoke run (executor: $EXECUTOR; MIDILM_EXECUTOR=slurm to use the cluster)"
prefect deployment run midilm-pipeline/nightly-smoke --param executor="$EXECUTOR"

cat >&2 <<MSG
prefect-demo: open the UI at http://127.0.0.1:4200 (Runs: the flow run and one task run per stage).
prefect-demo: worker log: .prefect/worker.log; stage logs: logs/prefect/<stage>.log
prefect-demo: stop everything with: scripts/prefect_demo.sh stop
MSG
