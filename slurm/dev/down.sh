#!/usr/bin/env bash
# Stop what slurm/dev/up.sh started, by the pids in its pid files (never by process name).
#   SLURM_STATE=/tmp/ptycho-slurm   the same state directory as up.sh
ST=${SLURM_STATE:-/tmp/ptycho-slurm}
stop() {  # $1 = pid file: TERM, wait up to 10 s, then KILL
  [ -s "$1" ] || return 0
  local p; p=$(cat "$1")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p"
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p"
  fi
  rm -f "$1"
}
for f in "$ST"/slurmd-*.pid; do [ -e "$f" ] && stop "$f"; done
stop "$ST/slurmctld.pid"
stop "$ST/slurmdbd.pid"
[ -e "$ST/started-mariadb" ] && stop /run/mysqld/mysqld.pid && rm -f "$ST/started-mariadb"
[ -e "$ST/started-munge" ] && stop /run/munge/munged.pid && rm -f "$ST/started-munge"
exit 0
