#!/usr/bin/env bash
# A multi-node Slurm on the hosts of scripts/hosts.sh (bring them up first):
#   scripts/slurm-hosts.sh up DIR      munged and slurmctld on rw-head, `slurmd -N rw-nodeK` on each node
#   scripts/slurm-hosts.sh down DIR    cancel jobs, stop the daemons by PID
#   scripts/slurm-hosts.sh client DIR CMD...   run a Slurm client (sbatch, srun, squeue...) on rw-head
# Config, key, state, logs: in DIR. Per-node spool and TmpFS (a shared /tmp breaks multi-node pmix)
# hold Unix sockets, whose paths must stay under 108 bytes: they go under hosts.sh's short state
# folder, which `hosts.sh down` removes.
# Every daemon lives in the hosts' namespaces, so `hosts.sh down` also ends whatever is left.
# Needs slurm-wlm and munge. The config follows scripts/slurm-cluster.sh (one node on loopback);
# the two should share one writer once both have landed.
set -euo pipefail
. "$(dirname "$0")/slurm-conf.sh"
cmd=${1:-}; dir=${2:-}
if [[ ! $cmd =~ ^(up|down|client)$ || -z $dir ]]; then
  echo "usage: $0 up|down DIR | client DIR CMD..." >&2; exit 2
fi
hosts="$(dirname "$0")/hosts.sh"
state=/run/rankwise-hosts/hosts
[ -f "$state" ] || { echo "slurm-hosts: error: no hosts are up (scripts/hosts.sh up N)" >&2; exit 1; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
export SLURM_CONF=$dir/slurm.conf   # never let a client fall back to a DNS lookup of the controller
on_head() { "$hosts" exec rw-head "$@"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
logs() { tail -n 20 "$dir"/log/*.log >&2 2>/dev/null || true; }
nodedirs=${state%/*}/slurm
nodes=$(awk '$1 ~ /^rw-node/ {print $1 "=" $2}' "$state")

up() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null ||
    { echo "slurm-hosts: error: slurm-wlm and munge are not installed" >&2; exit 1; }
  alive "$dir/slurmctld.pid" && { echo "slurm-hosts: error: already up in $dir" >&2; exit 1; }
  rm -rf "$dir"/{state,log,munge} "$nodedirs"
  mkdir -p "$dir"/{state,log,munge}
  chmod 755 "$dir" "$dir/munge"
  mungekey --create --keyfile="$dir/munge/munge.key" 2>/dev/null
  chmod 600 "$dir/munge/munge.key"
  on_head munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"
  local n names=""
  for n in $nodes; do mkdir -p "$nodedirs/spool/${n%=*}" "$nodedirs/tmp/${n%=*}"; names+="${n%=*},"; done
  {
    cat <<CONF
# Written by scripts/slurm-hosts.sh: controller on rw-head, one slurmd per host.
ClusterName=rankwise
SlurmctldHost=rw-head(10.231.0.254)
StateSaveLocation=$dir/state
SlurmdSpoolDir=$nodedirs/spool/%n
TmpFS=$nodedirs/tmp/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
# Node loss, detected fast: slurmctld pings each slurmd every SlurmdTimeout/3 s, a ping fails
# after MessageTimeout (the hosts share one machine: answers take milliseconds), and a node silent
# for SlurmdTimeout goes DOWN; its jobs end with NODE_FAIL (requeued if they allow it).
SlurmdTimeout=5
MessageTimeout=3
CONF
    # A requeued job waits cred_expire seconds before it starts again.
    slurm_common_conf "$dir" 5
    for n in $nodes; do
      echo "NodeName=${n%=*} NodeAddr=${n#*=} NodeHostname=${n%=*} CPUs=2 State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=${names%,} Default=YES MaxTime=INFINITE State=UP"
  } >"$SLURM_CONF"
  on_head slurmctld -i || { logs; exit 1; }
  for n in $nodes; do "$hosts" exec "${n%=*}" slurmd -N "${n%=*}" || { logs; exit 1; }; done
  for _ in $(seq 200); do
    if [ "$(on_head sinfo --noheader --format=%T 2>/dev/null | sort -u)" = idle ]; then
      echo "slurm-hosts: up in $dir (SLURM_CONF=$SLURM_CONF; run clients on rw-head)"; return 0
    fi
    sleep 0.1
  done
  echo "slurm-hosts: error: the nodes did not become idle in 20 s" >&2; on_head sinfo >&2 || true; logs; exit 1
}

stop() { # by PID from its pid file; KILL after 10 s
  alive "$1" || return 0
  local pid; pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

down() {
  if alive "$dir/slurmctld.pid"; then
    on_head scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 100); do [ -z "$(on_head squeue --noheader 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  local f
  for f in "$dir"/slurmd-*.pid "$dir/slurmctld.pid"; do stop "$f" & done
  wait
  stop "$dir/munge.pid"
}

client() { shift 2; on_head "$@"; }

"$cmd" "$@"
