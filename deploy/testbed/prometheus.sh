#!/usr/bin/env bash
# Prometheus (Debian package) scraping Strata brokers every second with the alert
# rules of deploy/prometheus/alerts.yml.
#
#   PROMETHEUS_TARGET=127.0.0.1:9644[,127.0.0.1:9645...] deploy/testbed/prometheus.sh install|start|stop|env
TB_NAME=prometheus
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${PROMETHEUS_PORT:-19090}
TARGET=${PROMETHEUS_TARGET:-127.0.0.1:9644}

tb_install() {
  tb_apt prometheus
}

tb_start() {
  local state; state=$(tb_state)
  tb_stop_recorded
  rm -rf "$state" && mkdir -p "$state/data"
  tb_port_free "$PORT"
  cp "$TESTBED_DIR/../prometheus/alerts.yml" "$state/alerts.yml"
  # Split on commas only, into an array: no word splitting or globbing of the list.
  local -a listed; IFS=, read -r -a listed <<<"$TARGET"
  local targets; targets=$(printf '"%s", ' "${listed[@]}"); targets=${targets%, }
  cat >"$state/prometheus.yml" <<CONF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - alerts.yml
scrape_configs:
  - job_name: strata
    static_configs:
      - targets: [$targets]
CONF
  tb_spawn prometheus prometheus --config.file="$state/prometheus.yml" \
    --storage.tsdb.path="$state/data" --web.listen-address="127.0.0.1:$PORT"
  tb_wait_port 127.0.0.1 "$PORT" 30 prometheus
  echo "PROMETHEUS_URL=http://127.0.0.1:$PORT" >"$state/env"
}

tb_stop() { tb_stop_recorded; }

tb_main "$@"
