#!/usr/bin/env bash
# Start a real single-node Slurm cluster on this machine (munged, slurmctld, slurmd) and wait until
# its node is idle. Idempotent: a running, healthy cluster is left as it is.
# As root it installs Debian's slurm-wlm and munge when missing. Tested with Slurm 22.05.
#   infra/slurm/start.sh        # then: sbatch/srun/squeue work; MIDILM_EXECUTOR=slurm dvc repro
#   infra/slurm/stop.sh
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
HOST=$(hostname -s)
LOG_DIR=/var/log/slurm
WAIT_S=${MIDILM_SLURM_WAIT_S:-60}

log() { echo "slurm-start: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "must run as root (it writes $CONF and starts daemons)"; exit 1
fi
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  log "installing slurm-wlm and munge from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: a key, then the daemon (as the munge user when it exists).
if [ ! -s /etc/munge/munge.key ]; then
  log "creating /etc/munge/munge.key"
  mkdir -p /etc/munge
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
owner=root; id munge >/dev/null 2>&1 && owner=munge
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown "$owner" /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "starting munged"
  if [ "$owner" = munge ]; then runuser -u munge -- /usr/sbin/munged --force; else /usr/sbin/munged --force; fi
  for _ in $(seq 1 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
fi

cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 ))
real_mem=$(( mem_mb * 9 / 10 ))
def_mem=$(( real_mem / cpus ))
mkdir -p "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
new_conf=$(cat <<CONF
# Written by midilm infra/slurm/start.sh: a single-node test cluster.
ClusterName=midilm
SlurmctldHost=$HOST
AuthType=auth/munge
# Step credentials live 30 s, and a requeued job waits that long to start again (default 120).
AuthInfo=cred_expire=30
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$def_mem
SchedulerType=sched/backfill
# Backfill every 5 s (default 30): a requeued job starts soon after its hold ends.
SchedulerParameters=bf_interval=5
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
NodeName=$HOST CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
)
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$new_conf" ]; then
  log "writing $CONF ($cpus CPUs, ${real_mem} MB)"
  printf '%s\n' "$new_conf" > "$CONF"
  pkill -x slurmctld 2>/dev/null || true
  pkill -x slurmd 2>/dev/null || true
  for _ in $(seq 1 60); do  # restart only once the old daemons are gone
    pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break
    sleep 0.5
  done
fi

pgrep -x slurmctld >/dev/null || { log "starting slurmctld"; /usr/sbin/slurmctld; }
pgrep -x slurmd >/dev/null || { log "starting slurmd"; /usr/sbin/slurmd; }

for _ in $(seq 1 "$WAIT_S"); do
  state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n1 || true)
  case "$state" in
    idle|mixed|allocated) log "node $HOST is $state"; exit 0 ;;
    down*|drain*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
log "node $HOST did not become idle in ${WAIT_S}s; see $LOG_DIR/slurmctld.log and slurmd.log"
exit 1
