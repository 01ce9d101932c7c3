#!/usr/bin/env bash
# Started by start-local-s3.sh when LOCAL_S3_OWNER_PID is set:
#
#   scripts/s3/watchdog.sh OWNER_PID DIR
#
# Waits while OWNER_PID lives and DIR exists. If the owner goes away first (a test runner killed with SIGKILL
# cannot run its exit handlers), it stops the cluster in DIR with stop-local-s3.sh. If DIR goes away first
# (normal stop), it just ends.
set -euo pipefail
(($# == 2)) || { echo "usage: $0 OWNER_PID DIR" >&2; exit 2; }
owner=$1
dir=$2
while [[ -d $dir ]] && kill -0 "$owner" 2>/dev/null; do sleep 1; done
[[ -d $dir ]] || exit 0
exec bash "$(dirname "${BASH_SOURCE[0]}")/stop-local-s3.sh" "$dir"
