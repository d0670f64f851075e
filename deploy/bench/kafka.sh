#!/usr/bin/env bash
# The Kafka benchmark: librdkafka (a Rust driver over the rdkafka crate) drives
# `strata serve` on the embedded default (local directory) and on SeaweedFS S3 from
# deploy/testbed/, and prints produce/consume throughput, produce latency and the
# broker's peak RSS and the CPU the client and the broker used, after the disk's
# sync baseline (deploy/bench/sync_probe.py).
#
#   deploy/bench/kafka.sh [MiB per case, default 256]
set -euo pipefail
cd "$(dirname "$0")/../.."
mib=${1:-256}
bash deploy/testbed/kafka-clients.sh start >/dev/null
python=$(bash deploy/testbed/kafka-clients.sh env | sed -n 's/^PYTHON=//p')
cargo build -q --release -p strata-broker --bin strata
strata=target/release/strata
# The driver builds librdkafka from the source its crate bundles (about a
# minute the first time); its own target dir keeps it out of the workspace's.
driver_target=${STRATA_BENCH_TARGET:-$HOME/.cache/strata/rdkafka-target}
CARGO_TARGET_DIR=$driver_target cargo build -q --release \
  --manifest-path deploy/bench/rdkafka-driver/Cargo.toml
driver=$driver_target/release/strata-rdkafka-driver

# The machine's own baseline: how its disk syncs beside a busy core and a writer.
python3 deploy/bench/sync_probe.py --dir "${TMPDIR:-/tmp}" --seconds 2
echo
"$python" deploy/bench/kafka_bench.py --strata "$strata" --driver "$driver" --mib "$mib"

# SeaweedFS runs where the client runs: off the CPU that takes the disk's interrupts.
STRATA_TESTBED_CPUS=$(python3 deploy/bench/sync_probe.py --dir "${TMPDIR:-/tmp}" --quiet-cpus) \
  bash deploy/testbed/seaweedfs.sh start >/dev/null
trap 'bash deploy/testbed/seaweedfs.sh stop >/dev/null' EXIT
config=$(mktemp)
eval "$(bash deploy/testbed/seaweedfs.sh env | sed 's/^/export /')"
cat >"$config" <<TOML
[storage]
kind = "minio"
# A root of this run's own: each benchmark broker is a new cluster.
root = "/bench-$(date +%s)"
bucket = "$S3_BUCKET"
endpoint = "$S3_ENDPOINT"
access_key_id = "$S3_ACCESS_KEY_ID"
secret_access_key = "$S3_SECRET_ACCESS_KEY"
TOML
echo
"$python" deploy/bench/kafka_bench.py --strata "$strata" --driver "$driver" \
  --mib "$mib" --config "$config" \
  --label "SeaweedFS 4.48 S3 (minio preset), local WAL"
