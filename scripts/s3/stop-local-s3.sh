#!/usr/bin/env bash
# Stops a cluster started by start-local-s3.sh and removes its directory:
#
#   scripts/s3/stop-local-s3.sh DIR
#
# Kills exactly the PIDs recorded in DIR/pids (SIGTERM, then SIGKILL after 10 s), and only if that PID is
# still one of our daemons (its command line names DIR/ceph.conf), so a recycled PID is never hit; likewise the
# watchdog recorded in DIR/watchdog.pid (its command line names DIR), unless that watchdog is this very process.
# Idempotent: a missing DIR or already-dead processes are fine.
set -euo pipefail
(($# == 1)) || { echo "usage: $0 DIR" >&2; exit 2; }
[[ -d $1 ]] || exit 0
DIR=$(cd "$1" && pwd -P)

ours() { # ours PID: true when PID is alive and was started with our config file
  [[ -r /proc/$1/cmdline ]] || return 1
  tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -Fxq "$DIR/ceph.conf"
}

# The watchdog first, so it does not race us.
if [[ -f $DIR/watchdog.pid ]]; then
  read -r wd <"$DIR/watchdog.pid" || true
  if [[ ${wd:-} =~ ^[0-9]+$ && $wd != "$$" && -r /proc/$wd/cmdline ]] &&
    tr '\0' '\n' <"/proc/$wd/cmdline" 2>/dev/null | grep -Fxq "$DIR"; then
    kill -TERM "$wd" 2>/dev/null || true
  fi
fi

pids=()
if [[ -f $DIR/pids ]]; then
  while read -r pid; do
    [[ $pid =~ ^[0-9]+$ ]] && ours "$pid" && pids+=("$pid")
  done <"$DIR/pids"
fi

if ((${#pids[@]})); then
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 100); do
    left=()
    for pid in "${pids[@]}"; do ours "$pid" && left+=("$pid"); done
    ((${#left[@]})) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do ours "$pid" && kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do ours "$pid" || break; sleep 0.1; done
  done
fi

rm -rf -- "$DIR"
