#!/usr/bin/env bash
# Real Kafka clients for the broker tests: librdkafka through confluent-kafka,
# kafka-python (with its compression codecs), kafkajs, and kcat. No server of its
# own: `start` installs what is missing and records where the clients are.
#
#   deploy/testbed/kafka-clients.sh install|start|stop|env
TB_NAME=kafka-clients
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKAJS_VERSION=2.2.4

tb_install() {
  tb_apt kcat
  tb_pip confluent-kafka==2.16.1 kafka-python==3.0.12 lz4 zstandard python-snappy
  local js="$STRATA_TESTBED_HOME/kafkajs"
  if [ ! -f "$js/node_modules/kafkajs/package.json" ]; then
    command -v npm >/dev/null || tb_die "npm not found: install Node.js 18+ with npm"
    mkdir -p "$js"
    tb_log "npm install kafkajs@$KAFKAJS_VERSION"
    (cd "$js" && [ -f package.json ] || echo '{"private":true}' >"$js/package.json")
    (cd "$js" && npm install --silent --no-audit --no-fund "kafkajs@$KAFKAJS_VERSION" >/dev/null) \
      || tb_die "npm install kafkajs@$KAFKAJS_VERSION failed"
  fi
}

tb_start() {
  local state; state=$(tb_state)
  mkdir -p "$state"
  command -v node >/dev/null || tb_die "node not found: install Node.js 18+"
  cat >"$state/env" <<ENV
PYTHON=$(tb_venv)/bin/python
NODE_PATH=$STRATA_TESTBED_HOME/kafkajs/node_modules
KCAT=$(command -v kcat)
ENV
}

tb_stop() { :; }

tb_main "$@"
