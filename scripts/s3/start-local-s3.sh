#!/usr/bin/env bash
# Starts a throwaway S3 endpoint on 127.0.0.1 for tests and benchmarks: Ceph's RADOS Gateway (radosgw)
# on a one-monitor, one-OSD cluster whose OSD keeps its data in memory (memstore). See
# docs/architecture.md §8 and docs/operations.md.
#
#   scripts/s3/start-local-s3.sh DIR [ACCESS_KEY [SECRET_KEY]]
#
# DIR must be empty or absent; every file of the cluster (config, mon store, OSD, logs, sockets) lives under it.
# On success it prints ONE JSON line on stdout and exits, leaving the daemons running:
#   {"endpoint":"http://127.0.0.1:PORT","accessKey":"..","secretKey":"..","pids":[mon,osd,rgw],"dir":"DIR"}
# The same line is kept in DIR/endpoint.json and the PIDs in DIR/pids; `scripts/s3/stop-local-s3.sh DIR`
# stops exactly those processes and removes DIR. On failure it prints log tails on stderr, stops whatever it
# started, leaves DIR (with the logs) for inspection and exits non-zero.
#
# Environment: LOCAL_S3_MEMSTORE_BYTES (OSD size, default 4 GiB: a 1 GiB benchmark object fits),
# LOCAL_S3_TIMEOUT (seconds to wait for each stage, default 60), LOCAL_S3_VERBOSE=1 (stage timings on stderr),
# LOCAL_S3_OWNER_PID (optional: a watchdog stops the cluster and removes DIR once that process is gone, so a
# test runner killed with SIGKILL leaves nothing behind; it ends by itself when DIR is removed).
#
# Quirks handled here:
#  - Without `tcp_nodelay=1` on the beast frontend every GET waits ~42 ms (Nagle + delayed ACK).
#  - Ports are picked free (monitor and gateway), so several clusters can run side by side on one machine.
#  - `paxos propose interval` is cut from 1 s to 50 ms: every pool radosgw creates costs two osdmap epochs, and
#    at 1 s each the seven RGW pools made the start take ~13 s and the first bucket / put / multipart upload
#    2 s each; with 50 ms the whole start takes ~2.5 s and first requests are fast.
#  - No ceph-mgr is started: the monitor alone serves pool creation and `ceph osd stat`.
#  - The OSD does not update its own CRUSH location / device class at boot (a startup race, see below).
set -euo pipefail

usage() { echo "usage: $0 DIR [ACCESS_KEY [SECRET_KEY]]" >&2; exit 2; }
(($# >= 1 && $# <= 3)) || usage

for bin in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool node; do
  command -v "$bin" >/dev/null || { echo "start-local-s3: '$bin' not found (run scripts/ensure-system.sh)" >&2; exit 1; }
done

mkdir -p "$1"
DIR=$(cd "$1" && pwd -P)
[[ -z $(ls -A "$DIR") ]] || { echo "start-local-s3: $DIR is not empty" >&2; exit 1; }

START_NS=$(date +%s%N)
say() { [[ ${LOCAL_S3_VERBOSE:-} == 1 ]] && echo "start-local-s3: +$((($(date +%s%N) - START_NS) / 1000000)) ms $*" >&2; return 0; }
rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
ACCESS_KEY=${2:-kluis$(rand_hex 8)}
SECRET_KEY=${3:-$(rand_hex 20)}
MEMSTORE_BYTES=${LOCAL_S3_MEMSTORE_BYTES:-4294967296}
TIMEOUT=${LOCAL_S3_TIMEOUT:-60}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

# Two distinct free TCP ports on 127.0.0.1, chosen by the kernel.
read -r MON_PORT RGW_PORT < <(node "$SCRIPT_DIR/free-ports.mjs" 2)

# Object classes (cls_rgw, ...) live in an architecture directory: /usr/lib/x86_64-linux-gnu/rados-classes on amd64.
CLASS_DIR=$(ls -d /usr/lib/*/rados-classes /usr/lib/rados-classes 2>/dev/null | head -n 1 || true)
[[ -n $CLASS_DIR ]] || { echo "start-local-s3: no rados-classes directory under /usr/lib (ceph-osd installed?)" >&2; exit 1; }

CONF="$DIR/ceph.conf"
FSID=$(cat /proc/sys/kernel/random/uuid)
mkdir -p "$DIR"/{mon,osd/0,run,log,rgw}
cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon initial members = a
mon host = v1:127.0.0.1:$MON_PORT
public network = 127.0.0.0/8
ms bind ipv6 = false
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = $DIR/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
paxos propose interval = 0.05
paxos min wait = 0.01
osd crush chooseleaf type = 0
osd crush update on start = false
osd class update on start = false
osd class dir = $CLASS_DIR
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = false
crash dir = $DIR/crash
mon cluster log file = $DIR/log/cluster.log
mon data = $DIR/mon/\$id
osd data = $DIR/osd/\$id
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw data = $DIR/rgw
rgw enable usage log = false
EOF

PIDS=()
ok=0
on_exit() {
  ((ok)) && return
  echo "start-local-s3: failed; logs under $DIR/log" >&2
  for f in "$DIR"/log/*.log; do
    [[ -f $f ]] || continue
    echo "--- tail $f" >&2
    tail -n 20 "$f" >&2 || true
  done
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
trap on_exit EXIT

ceph_cli() { timeout 20 ceph -c "$CONF" --connect-timeout 10 "$@"; }
# Start a daemon in the foreground-mode (-f) in the background: its PID is ours to record and stop.
# stdin/stdout/stderr are detached from the caller so a parent reading our stdout sees EOF when we exit.
spawn() {
  local name=$1; shift
  "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
  PIDS+=("$!")
  printf '%s\n' "${PIDS[@]}" >"$DIR/pids"
}
alive() { kill -0 "$1" 2>/dev/null; }
wait_for() { # wait_for DESCRIPTION PID COMMAND...: polls COMMAND until it succeeds, while PID lives
  local what=$1 pid=$2; shift 2
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    alive "$pid" || { echo "start-local-s3: process $pid died while waiting for $what" >&2; exit 1; }
    ((SECONDS < deadline)) || { echo "start-local-s3: timed out waiting for $what" >&2; exit 1; }
    sleep 0.2
  done
}

# 1. Monitor.
say "monitor on port $MON_PORT"
monmaptool --create --clobber --fsid "$FSID" --add a "v1:127.0.0.1:$MON_PORT" "$DIR/monmap" >/dev/null
ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" >>"$DIR/log/mkfs.out" 2>&1
spawn mon.a ceph-mon -c "$CONF" -i a -f
MON_PID=${PIDS[0]}
wait_for "the monitor" "$MON_PID" ceph_cli mon stat

# 2. One memstore OSD.
say "monitor up"
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
# Right after `mon stat` answers, the monitor may still refuse commands ("Error EPERM: problem getting command
# descriptions from mon", seen in CI on a loaded machine): retry. `osd create UUID` and `osd crush add` are idempotent.
mon_retry() {
  local deadline=$((SECONDS + TIMEOUT)) out
  until out=$(ceph_cli "$@" 2>>"$DIR/log/mon-retry.out"); do
    alive "$MON_PID" || { echo "start-local-s3: the monitor died during: ceph $*" >&2; exit 1; }
    ((SECONDS < deadline)) || { echo "start-local-s3: timed out on: ceph $*" >&2; tail -3 "$DIR/log/mon-retry.out" >&2; exit 1; }
    sleep 0.5
  done
  printf '%s' "$out"
}
OSD_ID=$(mon_retry osd create "$OSD_UUID")
[[ $OSD_ID == 0 ]] || { echo "start-local-s3: unexpected OSD id '$OSD_ID'" >&2; exit 1; }
# The OSD would place itself in the CRUSH map at boot, but that mon command can go out before its MonClient
# knows the fsid and fails with "wrong fsid", killing the OSD (seen 2 in 5 starts). So place it here instead.
mon_retry osd crush add osd.0 1.0 root=default >>"$DIR/log/mkfs.out"
ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >>"$DIR/log/mkfs.out" 2>&1
spawn osd.0 ceph-osd -c "$CONF" -i 0 -f
OSD_PID=${PIDS[1]}
osd_up() { ceph_cli osd stat | grep -q ' 1 up'; }
wait_for "the OSD to be up" "$OSD_PID" osd_up

# 3. The gateway, with Nagle off (tcp_nodelay=1 above).
say "OSD up"
ENDPOINT="http://127.0.0.1:$RGW_PORT"
spawn client.rgw radosgw -c "$CONF" -n client.rgw -f
RGW_PID=${PIDS[2]}
http_up() { node "$SCRIPT_DIR/http-ok.mjs" "$ENDPOINT"; }
wait_for "radosgw to answer HTTP on $ENDPOINT" "$RGW_PID" http_up

# 4. The S3 user.
say "radosgw answers on $ENDPOINT"
timeout 30 radosgw-admin -c "$CONF" user create --uid=test --display-name=test \
  --access-key="$ACCESS_KEY" --secret="$SECRET_KEY" >>"$DIR/log/user.out" 2>&1

LINE=$(node -e 'const [endpoint, accessKey, secretKey, dir, ...pids] = process.argv.slice(1);
  console.log(JSON.stringify({ endpoint, accessKey, secretKey, pids: pids.map(Number), dir }));' \
  "$ENDPOINT" "$ACCESS_KEY" "$SECRET_KEY" "$DIR" "${PIDS[@]}")
printf '%s\n' "$LINE" >"$DIR/endpoint.json"
say "user created"
if [[ -n ${LOCAL_S3_OWNER_PID:-} ]]; then
  [[ $LOCAL_S3_OWNER_PID =~ ^[0-9]+$ ]] || { echo "start-local-s3: bad LOCAL_S3_OWNER_PID" >&2; exit 1; }
  bash "$SCRIPT_DIR/watchdog.sh" "$LOCAL_S3_OWNER_PID" "$DIR" </dev/null >/dev/null 2>&1 &
  echo "$!" >"$DIR/watchdog.pid"
fi
ok=1
printf '%s\n' "$LINE"
