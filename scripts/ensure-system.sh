#!/usr/bin/env bash
# Installs the Debian packages the test suites need, only when they are missing, and says what it installs.
set -euo pipefail
need=()
# (each suite that needs a system package adds its check here)
# Local S3 for the blob store suites (scripts/s3/start-local-s3.sh): Ceph monitor, OSD and RADOS Gateway.
# Their dependencies ceph-base (monmaptool) and ceph-common (the `ceph` CLI, ceph-authtool, radosgw-admin) come along.
command -v ceph-mon >/dev/null 2>&1 || need+=(ceph-mon)
command -v ceph-osd >/dev/null 2>&1 || need+=(ceph-osd)
{ command -v radosgw >/dev/null 2>&1 && command -v radosgw-admin >/dev/null 2>&1; } || need+=(radosgw)
# PostgreSQL for the pg-*.test.ts suites (test/helpers/postgres.ts runs initdb and postgres from Debian's bin dir, which
# is not on PATH). Debian's package may also set up a cluster of its own; the tests never use it.
{ compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; } || need+=(postgresql)
# HAProxy for the two-node suite (test/integration/pg-haproxy.test.ts runs the configuration of docs/operations.md).
command -v haproxy >/dev/null 2>&1 || [[ -x /usr/sbin/haproxy ]] || need+=(haproxy)
# Headless Chromium for the link page suite (test/integration/link-page.test.ts drives /usr/bin/chromium via playwright-core).
command -v chromium >/dev/null 2>&1 || [[ -x /usr/bin/chromium ]] || need+=(chromium)
if ((${#need[@]})); then
  echo "npm test: installing missing system packages: ${need[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
