#!/usr/bin/env bash
# Several hosts on one machine, for multi-host tests: each host is a network namespace with its own
# address in a private /24 (it exists only inside these namespaces, nothing is routed out) and a
# persistent UTS namespace with its own hostname (OpenMPI's shared-memory segments and slurmctld
# need distinct hostnames). A bridge in a namespace of its own joins them. Names go into /etc/hosts
# between marker lines, so no lookup ever reaches DNS.
#
#   scripts/hosts.sh up N            bring up hosts rw-node1..N (1-8) at 10.231.0.1..N, and
#                                    rw-head at 10.231.0.254 (for a Slurm controller, mpirun, clients)
#   scripts/hosts.sh down            stop every process in them and remove everything (idempotent)
#   scripts/hosts.sh status          list the hosts; exit 1 if none are up
#   scripts/hosts.sh exec HOST CMD.. run CMD on HOST (a name or an address)
#   scripts/hosts.sh crash HOST      the host fails: every process on it is killed, its link goes down
#
# Outside the namespaces the subnet is unreachable (a route says so): nothing goes out by mistake.
#
# One instance at a time: `up` refuses while another is up and its owner lives. The owner is the
# process named by RANKWISE_HOSTS_OWNER (default: the caller); when it has died (a crashed test),
# `up` removes the stale fixture first.
set -euo pipefail

STATE=/run/rankwise-hosts   # hosts list, owner, UTS namespace files
NS=rwh                      # prefix of our network namespace names (they are global)
NET=10.231.0                # our private /24
SWITCH=$NS-switch
BEGIN="# rankwise-hosts begin"
END="# rankwise-hosts end"

die() { echo "hosts.sh: error: $*" >&2; exit 1; }

# Serialise up/down (and /etc/hosts edits) between concurrent callers.
lock() { exec 9>/run/rankwise-hosts.lock; flock -w 30 9 || die "another hosts.sh has held the lock for 30 s"; }

# Every process whose network or UTS namespace is one of the files given (default: all of ours).
ns_pids() {
  local inodes=() f
  [ $# -gt 0 ] || set -- /run/netns/$NS-* "$STATE"/uts/*
  for f in "$@"; do
    [ -e "$f" ] && inodes+=("$(stat -L -c %i "$f")")
  done
  [ ${#inodes[@]} -gt 0 ] || return 0
  local ids
  ids=$(printf '%s|' "${inodes[@]}")
  find /proc/[0-9]*/ns/net /proc/[0-9]*/ns/uts -maxdepth 0 -printf '%l %p\n' 2>/dev/null |
    grep -E "^(net|uts):\[(${ids%|})\] " | cut -d/ -f3 | sort -u || true
}

remove_hosts_lines() {
  # Rewrite in place: /etc/hosts may be a bind mount that cannot be replaced by a rename.
  local kept
  kept=$(sed "/^$BEGIN\$/,/^$END\$/d" /etc/hosts)
  printf '%s\n' "$kept" >/etc/hosts
}

# Send SIGNAL to every process in the namespace files given, until none is left (2 s at most).
kill_all() {
  local sig=$1 pids; shift
  for _ in $(seq 20); do
    pids=$(ns_pids "$@")
    [ -z "$pids" ] && return 0
    kill "-$sig" $pids 2>/dev/null || true
    sleep 0.1
  done
  return 1
}

# The hosts share this machine's /dev/shm: what a killed MPI job leaves there (shared-memory segments
# named after the host) would make a later job of the same id on that host crash.
clear_shm() { rm -f /dev/shm/*.$1.*; }  # $1: a host name or a glob

down() {
  kill_all TERM || kill_all KILL || echo "hosts.sh: warning: processes survived SIGKILL: $(ns_pids)" >&2
  clear_shm "rw-node*"
  clear_shm rw-head
  local f
  for f in "$STATE"/uts/*; do
    [ -e "$f" ] || continue
    umount "$f" 2>/dev/null || true
    rm -f "$f"
  done
  for f in /run/netns/$NS-*; do
    [ -e "$f" ] && ip netns del "${f##*/}"
  done
  grep -qx "$BEGIN" /etc/hosts && remove_hosts_lines
  ip route del unreachable "$NET.0/24" 2>/dev/null || true
  rm -rf "$STATE"
}

owner_alive() { [ -f "$STATE/owner" ] && kill -0 "$(cat "$STATE/owner")" 2>/dev/null; }

up() {
  local n=${1:-}
  [[ "$n" =~ ^[1-8]$ ]] || die "up needs a number of hosts from 1 to 8, got '${n}'"
  if [ -d "$STATE" ] || compgen -G "/run/netns/$NS-*" >/dev/null; then
    if owner_alive; then
      die "hosts are already up (owner pid $(cat "$STATE/owner")): $(cut -d' ' -f1 "$STATE/hosts" | tr '\n' ' ')- run 'scripts/hosts.sh down' first"
    fi
    echo "hosts.sh: removing a stale fixture (its owner has exited)" >&2
    down
  fi
  trap 'echo "hosts.sh: up failed; tearing down" >&2; down' ERR
  clear_shm "rw-node*"
  clear_shm rw-head
  mkdir -p "$STATE/uts"
  echo "${RANKWISE_HOSTS_OWNER:-$PPID}" >"$STATE/owner"
  # The names in /etc/hosts resolve on this host too: without this route a connection to one from
  # outside the namespaces would leave through the default gateway.
  ip route add unreachable "$NET.0/24"
  ip netns add "$SWITCH"
  ip -n "$SWITCH" link add br0 type bridge
  ip -n "$SWITCH" link set br0 up
  local k entries=""
  for k in $(seq "$n") 254; do
    local name=rw-node$k netns=$NS-node$k
    [ "$k" = 254 ] && name=rw-head netns=$NS-head
    ip netns add "$netns"
    ip -n "$SWITCH" link add "veth$k" type veth peer name eth0 netns "$netns"
    ip -n "$SWITCH" link set "veth$k" master br0 up
    ip -n "$netns" addr add "$NET.$k/24" dev eth0
    ip -n "$netns" link set eth0 up
    ip -n "$netns" link set lo up
    # A UTS namespace lives on as long as a bind mount of it does.
    touch "$STATE/uts/$name"
    unshare --uts="$STATE/uts/$name" hostname "$name"
    echo "$name $NET.$k $netns" >>"$STATE/hosts"
    entries+="$NET.$k $name"$'\n'
  done
  printf '%s\n%s%s\n' "$BEGIN" "$entries" "$END" >>/etc/hosts
  trap - ERR
}

# The network namespace and UTS file of HOST (a name or an address), or fail.
find_host() {
  [ -f "$STATE/hosts" ] || die "no hosts are up (scripts/hosts.sh up N)"
  local name addr netns
  while read -r name addr netns; do
    if [ "$1" = "$name" ] || [ "$1" = "$addr" ]; then
      echo "/run/netns/$netns $STATE/uts/$name"; return
    fi
  done <"$STATE/hosts"
  die "unknown host '$1' (up: $(cut -d' ' -f1 "$STATE/hosts" | tr '\n' ' '))"
}

case "${1:-}" in
  up) lock; up "${2:-}" ;;
  down) lock; down ;;
  status)
    [ -f "$STATE/hosts" ] || { echo "no hosts up"; exit 1; }
    owner_alive && o="alive" || o="exited"
    echo "owner pid $(cat "$STATE/owner") ($o)"
    cat "$STATE/hosts" ;;
  crash)
    [ $# -eq 2 ] || die "usage: hosts.sh crash HOST"
    read -r net uts < <(find_host "$2") || exit 1
    # Link first, so that peers see silence (timeouts) as from a dead machine, not refused connections.
    nsenter --net="$net" ip link set eth0 down
    kill_all KILL "$net" "$uts" || die "processes on $2 survived SIGKILL: $(ns_pids "$net" "$uts")"
    clear_shm "${uts##*/}" ;;
  exec)
    [ $# -ge 3 ] || die "usage: hosts.sh exec HOST CMD..."
    read -r net uts < <(find_host "$2") || exit 1
    shift 2
    exec nsenter --net="$net" --uts="$uts" -- "$@" ;;
  *) echo "usage: scripts/hosts.sh up N | down | status | exec HOST CMD... | crash HOST" >&2; exit 2 ;;
esac
