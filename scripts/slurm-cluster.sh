#!/usr/bin/env bash
# A private one-node Slurm cluster on loopback, for tests and demos:
#   scripts/slurm-cluster.sh up DIR      start munged (own key and socket), slurmctld, slurmd
#   scripts/slurm-cluster.sh status DIR  daemons and node state
#   scripts/slurm-cluster.sh down DIR    cancel jobs, stop the daemons by PID, free the lock
# Everything (config, key, state, spool, logs) lives in DIR. Use it with
#   export SLURM_CONF=DIR/slurm.conf
# Only one cluster runs at a time on a machine (the ports are fixed): `up` refuses with a clear
# error while another one is up. Needs slurm-wlm and munge (scripts/setup.sh installs them).
set -euo pipefail
. "$(dirname "$0")/slurm-conf.sh"
cmd=${1:-}; dir=${2:-}
if [[ ! $cmd =~ ^(up|down|status)$ || -z $dir ]]; then
  echo "usage: $0 up|down|status DIR" >&2; exit 2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf=$dir/slurm.conf
lock=${RANKWISE_SLURM_LOCK:-/tmp/rankwise-slurm-cluster.lock}
export SLURM_CONF=$conf   # never let a client fall back to a DNS lookup of the controller
host=$(hostname -s)
ctld_port=${RANKWISE_SLURMCTLD_PORT:-6817}
slurmd_port=${RANKWISE_SLURMD_PORT:-6818}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop() { # stop the daemon whose pid file is $1, by PID; KILL after 10 s
  alive "$1" || return 0
  local pid; pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  echo "slurm-cluster: $(basename "$1" .pid) ($pid) ignored TERM; killing it" >&2
  kill -9 "$pid" 2>/dev/null || true
}

logs() { tail -n 20 "$dir"/log/*.log >&2 2>/dev/null || true; }

up() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null ||
    { echo "error: slurm-wlm and munge are not installed (run scripts/setup.sh)" >&2; exit 1; }
  # One cluster at a time: the lock holds the running cluster's directory.
  if ! mkdir "$lock" 2>/dev/null; then
    other=$(cat "$lock/dir" 2>/dev/null || true)
    if [ -n "$other" ] && alive "$other/slurmctld.pid"; then
      echo "error: another Rankwise Slurm cluster is up ($other); stop it with: $0 down $other" >&2
      exit 1
    fi
    echo "slurm-cluster: taking over a stale lock from ${other:-an unknown cluster}" >&2
  fi
  echo "$dir" > "$lock/dir"
  rm -rf "$dir"/{state,spool,log,tmp,munge}
  mkdir -p "$dir"/{state,spool,log,tmp,munge}
  chmod 755 "$dir" "$dir/munge"
  mungekey --create --keyfile="$dir/munge/munge.key" 2>/dev/null
  chmod 600 "$dir/munge/munge.key"
  munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"
  { cat <<CONF
# Written by scripts/slurm-cluster.sh: a one-node cluster on loopback.
ClusterName=rankwise
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
TmpFS=$dir/tmp
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
CONF
    slurm_common_conf "$dir"
    echo "NodeName=$host NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN"
    echo "PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP"
  } > "$conf"
  slurmctld -i || { logs; exit 1; }
  slurmd || { logs; exit 1; }
  for _ in $(seq 200); do
    if [ "$(sinfo --noheader --format=%T 2>/dev/null)" = idle ]; then
      echo "slurm-cluster: up in $dir (SLURM_CONF=$conf)"; return 0
    fi
    sleep 0.1
  done
  echo "error: the node did not become idle in 20 s" >&2; sinfo >&2 || true; logs; exit 1
}

down() {
  if alive "$dir/slurmctld.pid"; then
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    # Let slurmd reap the job steps before it goes.
    for _ in $(seq 100); do [ -z "$(squeue --noheader 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  stop "$dir/slurmd.pid" & stop "$dir/slurmctld.pid" & wait
  stop "$dir/munge.pid"
  if [ "$(cat "$lock/dir" 2>/dev/null)" = "$dir" ]; then rm -rf "$lock"; fi
  echo "slurm-cluster: down ($dir)"
}

status() {
  local rc=0
  for d in munge slurmctld slurmd; do
    if alive "$dir/$d.pid"; then echo "$d: running ($(cat "$dir/$d.pid"))"; else echo "$d: stopped"; rc=1; fi
  done
  [ $rc -eq 0 ] && sinfo --noheader --format="node %N: %T, %c CPUs" && squeue
  return $rc
}

"$cmd"
