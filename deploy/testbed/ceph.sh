#!/usr/bin/env bash
# Ceph RGW 16.2 on one node: one monitor, one bluestore OSD on a file, radosgw on
# 127.0.0.1:17480, bucket `strata` owned by user `strata`, and a second user `other`
# that owns nothing (for permission-denied checks).
TB_NAME=ceph
source "$(dirname "$0")/lib.sh"

RGW_PORT=${CEPH_RGW_PORT:-17480}
MON_PORT=16789
ACCESS=strata-access
SECRET=strata-secret

tb_install() {
  tb_apt ceph-mon ceph-osd radosgw ceph-common uuid-runtime faketime
  tb_pip boto3
}

ceph_conf() {
  local state=$1 fsid=$2
  cat <<CONF
[global]
fsid = $fsid
mon_host = v1:127.0.0.1:$MON_PORT
mon_initial_members = a
public_network = 127.0.0.0/8
auth_allow_insecure_global_id_reclaim = false
run_dir = $state/run
admin_socket = $state/run/\$name.asok
log_file = $state/log/\$name.log
pid_file = $state/run/\$name.pid
keyring = $state/keyring
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
# A busy test disk must not stop the monitor.
mon_data_avail_warn = 1
mon_data_avail_crit = 0
mon_max_pg_per_osd = 1000
paxos_propose_interval = 0.05
mon_data = $state/mon-\$id
osd_data = $state/osd-\$id
osd_objectstore = bluestore
bluestore_block_path = $state/osd-\$id/block.file
bluestore_block_size = 4294967296
bluestore_block_create = true
osd_memory_target = 536870912
bluestore_cache_autotune = false
bluestore_cache_size = 67108864

[client.rgw]
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw_data = $state/rgw
rgw_enable_usage_log = false
rgw_dns_name = 127.0.0.1
CONF
}

tb_start() {
  local state; state=$(tb_state)
  [ -f "$state/pids" ] && tb_stop_recorded
  rm -rf "$state"; mkdir -p "$state/run" "$state/log" "$state/mon-a" "$state/osd-0" "$state/rgw"
  tb_port_free "$MON_PORT"; tb_port_free "$RGW_PORT"
  local fsid; fsid=$(uuidgen)
  ceph_conf "$state" "$fsid" >"$state/ceph.conf"
  local c=(-c "$state/ceph.conf")

  ceph-authtool --create-keyring "$state/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$state/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  monmaptool --create --addv a "[v1:127.0.0.1:$MON_PORT]" --fsid "$fsid" "$state/monmap" >/dev/null
  ceph-mon "${c[@]}" --mkfs -i a --monmap "$state/monmap" --keyring "$state/keyring" \
    >"$state/log/mkfs-mon.log" 2>&1 || tb_die "ceph-mon --mkfs failed: $(tail -n 5 "$state/log/mkfs-mon.log")"
  tb_spawn mon ceph-mon "${c[@]}" -f -i a
  tb_wait_port 127.0.0.1 "$MON_PORT" 30 ceph-mon

  local osd_id; osd_id=$(timeout 30 ceph "${c[@]}" osd create) || tb_die "ceph osd create failed"
  [ "$osd_id" = 0 ] || tb_die "expected osd id 0, got $osd_id"
  ceph "${c[@]}" auth get-or-create osd.0 mon 'allow profile osd' osd 'allow *' >>"$state/keyring"
  ceph "${c[@]}" auth get-or-create client.rgw mon 'allow rw' osd 'allow rwx' >>"$state/keyring"
  ceph-osd "${c[@]}" -i 0 --mkfs >"$state/log/mkfs-osd.log" 2>&1 \
    || tb_die "ceph-osd --mkfs failed: $(tail -n 5 "$state/log/mkfs-osd.log")"
  tb_spawn osd ceph-osd "${c[@]}" -f -i 0
  local deadline=$((SECONDS + 60))
  until timeout 10 ceph "${c[@]}" osd stat 2>/dev/null | grep -q "1 up"; do
    [ $SECONDS -ge $deadline ] && tb_die "osd.0 did not come up within 60s (log: $state/log/osd.0.log)"
    sleep 0.3
  done

  tb_spawn rgw radosgw "${c[@]}" -f -n client.rgw
  tb_wait_port 127.0.0.1 "$RGW_PORT" 90 radosgw

  radosgw-admin "${c[@]}" user create --uid=strata --display-name=strata \
    --access-key="$ACCESS" --secret="$SECRET" >/dev/null || tb_die "radosgw-admin user create strata failed"
  radosgw-admin "${c[@]}" user create --uid=other --display-name=other \
    --access-key=other-access --secret=other-secret >/dev/null || tb_die "radosgw-admin user create other failed"
  "$(tb_venv)/bin/python" "$TESTBED_DIR/s3_bucket.py" "http://127.0.0.1:$RGW_PORT" "$ACCESS" "$SECRET" strata \
    || tb_die "creating bucket strata failed"

  tb_write_env <<ENV
S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
S3_BUCKET=strata
S3_REGION=us-east-1
S3_ACCESS_KEY_ID=$ACCESS
S3_SECRET_ACCESS_KEY=$SECRET
S3_OTHER_ACCESS_KEY_ID=other-access
S3_OTHER_SECRET_ACCESS_KEY=other-secret
ENV
}

tb_stop() { tb_stop_recorded; }

tb_main "$@"
