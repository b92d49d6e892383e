#!/usr/bin/env bash
# A real single-node SLURM cluster (munged, slurmctld, slurmd) on 127.0.0.1, for tests and trials.
#   bash tools/slurm/cluster.sh start PREFIX    build it from nothing under PREFIX (an absent or empty
#                                               folder), wait until the node is idle, and print the lines
#                                               to export (SLURM_CONF, PATH with the sacct stand-in first)
#   bash tools/slurm/cluster.sh status PREFIX   the daemons' pids and `sinfo`
#   bash tools/slurm/cluster.sh stop PREFIX     cancel all jobs, stop the daemons by pid file (TERM, then
#                                               KILL), remove PREFIX; nothing is left running
# Needs Debian's slurm-wlm and munge (tools/setup.sh --test installs them) and root: without systemd or
# cgroups, slurmd runs jobs as the user who starts it. Ports are chosen free at start, so several clusters
# (one per pytest-xdist worker) can run side by side. Exit status 2: the packages are missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:-}"; prefix="${2:-}"
if [ -z "$cmd" ] || [ -z "$prefix" ]; then
  echo "usage: $0 start|stop|status PREFIX" >&2; exit 64
fi
prefix="$(realpath -m "$prefix")"
daemons=(slurmd slurmctld munged)   # stop order: the node, the controller, then authentication

pid_of() { local f="$prefix/run/$1.pid"; [ -s "$f" ] && cat "$f" || true; }
# Running, not a zombie: an exited daemon stays a zombie until init reaps it, which some inits never do.
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

stop() {
  [ -d "$prefix" ] || return 0
  if [ ! -f "$prefix/.cluster.sh" ]; then   # the mark start leaves: never remove a folder it did not make
    echo "cannot stop: $prefix was not made by $0 start (no .cluster.sh in it); nothing done" >&2
    return 1
  fi
  if [ -f "$prefix/etc/slurm.conf" ] && alive "$(pid_of slurmctld)"; then
    export SLURM_CONF="$prefix/etc/slurm.conf"
    timeout 10 scancel --quiet --full --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 100); do   # up to 10 s for the jobs to end
      [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null || true)" ] && break
      sleep 0.1
    done
  fi
  for d in "${daemons[@]}"; do
    local pid; pid="$(pid_of "$d")"
    alive "$pid" || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
  done
  # Job steps (slurmstepd) outlive slurmd by design: end any left, found by this cluster's SLURM_CONF in
  # their environment, then the batch scripts that ran from this cluster's spool folder.
  local strays=() pid
  for pid in $(pgrep -x slurmstepd || true); do
    grep -qzx "SLURM_CONF=$prefix/etc/slurm.conf" "/proc/$pid/environ" 2>/dev/null && strays+=("$pid")
  done
  for pid in $(pgrep -f "^/bin/sh $prefix/spool/" || true); do strays+=("$pid"); done
  [ ${#strays[@]} -gt 0 ] && kill -KILL "${strays[@]}" 2>/dev/null || true
  rm -rf "$prefix"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start() {
  local missing=()
  for c in munged mungekey slurmctld slurmd sinfo sbatch squeue python3; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "cannot start SLURM: missing ${missing[*]}; install with: apt-get install -y --no-install-recommends slurm-wlm munge" >&2
    exit 2
  fi
  if [ -e "$prefix" ] && [ -n "$(ls -A "$prefix")" ]; then
    echo "cannot start SLURM: $prefix is not empty; stop the cluster there first or pick a new folder" >&2
    exit 1
  fi
  # From here on, a failed start stops whatever it started and removes PREFIX.
  trap 'rc=$?; [ $rc -eq 0 ] || stop; exit $rc' EXIT
  mkdir -p "$prefix"/{etc,run,log,state,spool,bin,munge/key,munge/socket}
  touch "$prefix/.cluster.sh"
  # munge refuses keys and sockets in folders others can write: key folder 0700, socket folder 0755.
  chmod 0700 "$prefix/munge/key"; chmod 0755 "$prefix/munge" "$prefix/munge/socket"
  mungekey -c -k "$prefix/munge/key/munge.key"
  munged -S "$prefix/munge/socket/munge.sock" --key-file="$prefix/munge/key/munge.key" \
    --pid-file="$prefix/run/munged.pid" --log-file="$prefix/log/munged.log" \
    --seed-file="$prefix/munge/munged.seed"

  local cpus mem_mb user ctld_port slurmd_port
  cpus="$(nproc)"
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) * 85 / 100 / 1024 ))  # leave 15% to the system
  user="$(id -un)"
  ctld_port="$(free_port)"; slurmd_port="$(free_port)"
  while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port="$(free_port)"; done
  cat > "$prefix/etc/slurm.conf" <<CONF
# Written by tools/slurm/cluster.sh: a one-node cluster under $prefix.
ClusterName=advhyp
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
# Without these the daemons bind 0.0.0.0; with them, only the node's address (127.0.0.1).
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits this long before it may start again (default 120 s); 10 s is ample
# on one node, where a job step's credential travels from slurmctld to slurmd within a second.
AuthInfo=socket=$prefix/munge/socket/munge.sock,cred_expire=10
# No systemd and no cgroups here: track processes through /proc, no task binding, one user for all.
SlurmUser=$user
SlurmdUser=$user
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
# Seconds from SIGTERM to SIGKILL when a job is cancelled or times out (default 30): submitit's jobs
# ignore SIGTERM, so a cancelled job would hold its CPUs for all of it.
KillWait=5
# Consumable cores and memory, with a default memory per CPU: otherwise a job that asks for no memory
# gets the whole node and jobs run one at a time.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$(( mem_mb / cpus ))
# Start jobs as soon as they are submitted (up to 3 s sooner), and look at pending jobs every 2 s, not
# every 60: a requeued job is started by this periodic pass once its wait (cred_expire) is over.
SchedulerParameters=batch_sched_delay=0,sched_interval=2
# No accounting database (slurmdbd): finished jobs go to a text file, which bin/sacct (a stand-in for
# the real sacct, which needs the database) reads to tell submitit how a job ended.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$prefix/log/jobcomp.txt
StateSaveLocation=$prefix/state
SlurmdSpoolDir=$prefix/spool
SlurmctldPidFile=$prefix/run/slurmctld.pid
SlurmdPidFile=$prefix/run/slurmd.pid
SlurmctldLogFile=$prefix/log/slurmctld.log
SlurmdLogFile=$prefix/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$prefix/etc/slurm.conf"
  ln -s "$here/sacct.py" "$prefix/bin/sacct"
  slurmctld -i
  slurmd -N localhost
  local state=""
  for _ in $(seq 150); do   # up to 30 s; on this kind of machine it is idle in under a second
    state="$(sinfo -h -n localhost -o %T 2>/dev/null || true)"
    [ "$state" = "idle" ] && break
    sleep 0.2
  done
  if [ "$state" != "idle" ]; then
    echo "cannot start SLURM: node state '${state:-none}' after 30 s; logs in $prefix/log:" >&2
    tail -n 5 "$prefix"/log/*.log >&2 || true
    exit 1
  fi
  echo "export SLURM_CONF=$SLURM_CONF"
  echo "export PATH=$prefix/bin:\$PATH"
}

status() {
  for d in "${daemons[@]}"; do
    local pid; pid="$(pid_of "$d")"
    if alive "$pid"; then echo "$d: running (pid $pid)"; else echo "$d: not running"; fi
  done
  [ -f "$prefix/etc/slurm.conf" ] && SLURM_CONF="$prefix/etc/slurm.conf" sinfo 2>&1 || true
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status PREFIX" >&2; exit 64 ;;
esac
