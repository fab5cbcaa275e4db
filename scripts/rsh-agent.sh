#!/usr/bin/env bash
# An ssh stand-in for MPI launchers on the hosts of scripts/hosts.sh:
#   rsh-agent.sh [ssh options] HOST CMD...
# runs the shell command CMD inside HOST's namespaces. For OpenMPI:
#   OMPI_MCA_plm_rsh_agent=$PWD/scripts/rsh-agent.sh OMPI_MCA_plm_rsh_no_tree_spawn=1
# (no tree spawn: the daemons it starts would need this script on their own PATH).
set -euo pipefail
# Launchers may pass ssh options first; skip them, with the value of those that take one.
while [ $# -gt 0 ]; do
  case "$1" in
    -[bcDEeFIiJLlmOopQRSWw]) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "rsh-agent.sh: usage: rsh-agent.sh [ssh options] HOST CMD..." >&2; exit 255; }
host=$1
shift
# Like ssh: the remaining words form one command line for the remote shell.
exec "$(dirname "$0")/hosts.sh" exec "$host" /bin/sh -c "$*"
