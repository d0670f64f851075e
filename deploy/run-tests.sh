#!/usr/bin/env bash
# Strata's whole test run: formatting, lints, each storage feature built alone, unit
# tests, and every backend suite against a real server that its test target starts
# through deploy/testbed/ (installing what is missing: Debian packages, PyPI tools).
#
#   deploy/run-tests.sh
#
# Needs: a Rust toolchain (cargo with rustfmt and clippy), python3 with venv, and
# root or sudo for apt-get. Nothing is skipped: a server that cannot start fails its
# suite with a message.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CI:-}" = true ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
  # CI runs in a fresh clone: keep compiled dependencies between runs. Without
  # incremental data (a fresh clone rebuilds the workspace's crates anyway, and it
  # was 4 of the cache's 12 GB), and started over past 20 GiB, so that it cannot
  # grow without bound from run to run.
  export CARGO_TARGET_DIR="$HOME/.cache/strata/target"
  export CARGO_INCREMENTAL=0
  rm -rf "$CARGO_TARGET_DIR/debug/incremental"
  if [ -d "$CARGO_TARGET_DIR" ] && [ "$(du -sm "$CARGO_TARGET_DIR" | cut -f1)" -gt 20480 ]; then
    echo "the cargo cache $CARGO_TARGET_DIR is over 20 GiB: starting it over"
    rm -rf "$CARGO_TARGET_DIR"
  fi
fi

step() { printf '\n==> %s\n' "$*"; }

step "prerequisites"
command -v cargo >/dev/null || { echo "error: cargo not found: install Rust (rustup)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "error: python3 not found" >&2; exit 1; }
for server in seaweedfs ceph hdfs kafka-clients prometheus; do
  bash deploy/testbed/$server.sh install
done

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, warnings denied)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "each storage feature builds alone"
for feature in fs memory s3 hdfs; do
  echo "strata-backends --no-default-features --features $feature"
  cargo build -q -p strata-backends --no-default-features --features "$feature" --locked
done

step "a build with only the fs backend refuses the others by feature name"
cargo test -q -p strata-backends --no-default-features --features fs --locked --lib -- not_compiled_in

step "build the strata binary (the storage check suites run it)"
cargo build --workspace --bins --locked

step "unit tests and backend suites"
# Every client and tool a test runs has a deadline of its own; this one catches a
# hang anywhere else, so that the run fails with the hung test on screen instead
# of holding CI to its limit. timeout signals its whole process group: the test
# binaries and the testbed servers they started go with cargo.
status=0
timeout 45m cargo test --workspace --all-features --locked --no-fail-fast || status=$?
if [ "$status" -eq 124 ]; then
  echo "error: the tests did not finish within 45 minutes: the last test started above is hung" >&2
fi
exit "$status"
