#!/usr/bin/env bash
# A one-node Slurm cluster on localhost, for trying `sae-train slurm` on a laptop and for the tests.
#
#   scripts/slurm-local.sh start  [dir]   write a munge key and slurm.conf into dir, start munged, slurmctld and
#                                         slurmd, record their PIDs, wait until the node is idle
#   scripts/slurm-local.sh stop   [dir]   cancel this cluster's jobs, then end exactly the PIDs start recorded
#   scripts/slurm-local.sh status [dir]   which of those daemons run, and sinfo/squeue
#
# dir defaults to $SLURM_LOCAL_DIR or ${TMPDIR:-/tmp}/sae-train-slurm-$(id -u). It installs nothing: the
# packages are Debian's slurm-wlm and munge (`apt-get install slurm-wlm munge`); .ci/run installs them.
# Clients find this cluster through SLURM_CONF: after start, `source <dir>/env` (start prints the line).
# Settings known to work in containers: proctrack/linuxproc, task/none, select/cons_tres, no accounting,
# SlurmUser root, all state, spool, logs and the munge socket inside dir.
set -euo pipefail

cmd=${1:-}
dir=${2:-${SLURM_LOCAL_DIR:-${TMPDIR:-/tmp}/sae-train-slurm-$(id -u)}}
DAEMONS=(munged slurmctld slurmd)

die() { echo "slurm-local: $*" >&2; exit 1; }
usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# The PID recorded for a daemon if that process still runs, else nothing.
live_pid() {
  local f="$dir/pids/$1.pid" pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# A TCP port nobody listens on, from $1 upwards.
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH. Install Slurm and MUNGE first (Debian/Ubuntu: apt-get install slurm-wlm munge)."
}

write_config() {
  mkdir -p "$dir"/{pids,log,state,spool,munge}
  chmod 700 "$dir" "$dir/munge"
  if [ ! -s "$dir/munge/munge.key" ]; then
    head -c 1024 /dev/urandom >"$dir/munge/munge.key.tmp"
    chmod 400 "$dir/munge/munge.key.tmp"
    mv "$dir/munge/munge.key.tmp" "$dir/munge/munge.key"
  fi
  local sock="$dir/munge/munge.socket"
  [ ${#sock} -lt 100 ] || die "the munge socket path $sock is too long for a Unix socket (over 100 characters); give a shorter dir."
  [ -s "$dir/slurm.conf" ] && return 0
  local host node ctl_port d_port
  host=$(hostname -s)
  # slurmd -C prints this machine's real CPUs and memory as a NodeName line; take its resources.
  node=$(slurmd -C | head -n 1 | sed -E 's/^NodeName=[^ ]+ //')
  [ -n "$node" ] || die "slurmd -C printed nothing; cannot tell this machine's CPUs and memory."
  ctl_port=$(free_port 6817)
  d_port=$(free_port $((ctl_port + 1)))
  cat >"$dir/slurm.conf.tmp" <<EOF
# Written by scripts/slurm-local.sh: a one-node cluster on localhost.
ClusterName=saetrain
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$sock,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldPidFile=$dir/state/slurmctld.pidfile
SlurmdPidFile=$dir/spool/slurmd.pidfile
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
JobRequeue=1
KillWait=5
MinJobAge=600
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$host NodeAddr=127.0.0.1 $node State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  mv "$dir/slurm.conf.tmp" "$dir/slurm.conf"
  printf 'export SLURM_CONF=%q\n' "$dir/slurm.conf" >"$dir/env"
}

# Starts "$@" in the background in its own session, output to log/<name>.out, and records its PID.
spawn() {
  local name=$1; shift
  setsid "$@" </dev/null >>"$dir/log/$name.out" 2>&1 &
  echo $! >"$dir/pids/$name.pid"
}

show_logs() {
  for f in "$dir"/log/*; do
    [ -s "$f" ] || continue
    echo "--- $f (last lines)" >&2
    tail -n 8 "$f" >&2
  done
}

start() {
  need munged; need slurmctld; need slurmd; need sinfo
  [ "$(id -u)" = 0 ] || die "run as root: this one-node setup runs slurmd as root (SlurmdUser=root) so that jobs can run as any user."
  local running=0 d
  for d in "${DAEMONS[@]}"; do live_pid "$d" >/dev/null && running=$((running + 1)); done
  if [ "$running" = ${#DAEMONS[@]} ]; then
    echo "slurm-local: already running in $dir"
    echo "export SLURM_CONF=$dir/slurm.conf"
    return 0
  fi
  [ "$running" = 0 ] || die "only some daemons of $dir run; run '$0 stop $dir' first."
  write_config
  export SLURM_CONF="$dir/slurm.conf"
  local sock="$dir/munge/munge.socket"
  rm -f "$sock" "$sock.lock"
  spawn munged munged -F -f --socket="$sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/munged.seed" --log-file="$dir/log/munged.log"
  local i
  for i in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
  [ -S "$sock" ] || { show_logs; stop_daemons; die "munged did not create $sock (log above)."; }
  spawn slurmctld slurmctld -D -f "$SLURM_CONF"
  spawn slurmd slurmd -D -f "$SLURM_CONF" -N "$(hostname -s)"
  # Wait until the node is idle (slurmd registered, controller scheduling).
  local state=""
  for i in $(seq 120); do
    for d in "${DAEMONS[@]}"; do
      live_pid "$d" >/dev/null || { show_logs; stop_daemons; die "$d exited during start (logs above, all in $dir/log)."; }
    done
    state=$(sinfo -h -N -o %t 2>/dev/null | head -n 1 || true)
    case "$state" in idle*) break ;; esac
    sleep 0.5
  done
  case "$state" in
    idle*) ;;
    *) show_logs; stop_daemons; die "the node is not idle after 60 s (sinfo says '${state:-nothing}'; logs above, all in $dir/log)." ;;
  esac
  echo "slurm-local: running in $dir (munged $(live_pid munged), slurmctld $(live_pid slurmctld), slurmd $(live_pid slurmd))"
  echo "export SLURM_CONF=$dir/slurm.conf"
}

# Ends the recorded daemons, slurmd first: TERM, then KILL after 10 s.
stop_daemons() {
  local d pid i
  for d in slurmd slurmctld munged; do
    pid=$(live_pid "$d") || { rm -f "$dir/pids/$d.pid"; continue; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "slurm-local: $d ($pid) did not end after SIGTERM; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pids/$d.pid"
  done
}

stop() {
  local any=0 d
  for d in "${DAEMONS[@]}"; do live_pid "$d" >/dev/null && any=1; done
  if [ "$any" = 0 ]; then
    rm -f "$dir"/pids/*.pid 2>/dev/null || true
    echo "slurm-local: nothing running in $dir"
    return 0
  fi
  export SLURM_CONF="$dir/slurm.conf"
  # Cancel this cluster's jobs while the daemons still run, so no job step outlives them.
  if live_pid slurmctld >/dev/null && live_pid slurmd >/dev/null; then
    local jobs i
    jobs=$(squeue -h -o %A 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      for i in $(seq 100); do [ -z "$(squeue -h -t R,CG -o %A 2>/dev/null)" ] && break; sleep 0.1; done
    fi
  fi
  stop_daemons
  echo "slurm-local: stopped ($dir)"
}

status() {
  local d pid all=0
  for d in "${DAEMONS[@]}"; do
    if pid=$(live_pid "$d"); then echo "$d: running ($pid)"; all=$((all + 1)); else echo "$d: not running"; fi
  done
  [ "$all" = ${#DAEMONS[@]} ] || return 3
  export SLURM_CONF="$dir/slurm.conf"
  sinfo -N
  squeue
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
