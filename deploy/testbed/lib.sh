# Shared helpers for the testbed scripts. Sourced, not run.
#
# Every server keeps its state under $STRATA_TESTBED_RUN/<name>/ and records the
# PIDs it started there, so `stop` ends exactly those processes and nothing else.
# Installed tools live under $STRATA_TESTBED_HOME so a second run does not fetch
# them again.

set -euo pipefail

STRATA_TESTBED_RUN=${STRATA_TESTBED_RUN:-/tmp/strata-testbed}
STRATA_TESTBED_HOME=${STRATA_TESTBED_HOME:-$HOME/.cache/strata-testbed}
TESTBED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

tb_log() { printf '[testbed %s] %s\n' "$TB_NAME" "$*" >&2; }
tb_die() { tb_log "error: $*"; exit 1; }

tb_state() { printf '%s/%s' "$STRATA_TESTBED_RUN" "$TB_NAME"; }

# A Python venv shared by the testbed's PyPI tools.
tb_venv() {
  local venv="$STRATA_TESTBED_HOME/venv"
  if [ ! -x "$venv/bin/pip" ]; then
    mkdir -p "$STRATA_TESTBED_HOME"
    python3 -m venv "$venv" || tb_die "python3 -m venv failed: install python3-venv"
    "$venv/bin/pip" install -q --upgrade pip >/dev/null
  fi
  printf '%s' "$venv"
}

# Installs PyPI packages into the testbed venv unless already there.
tb_pip() {
  local venv; venv=$(tb_venv)
  for pkg in "$@"; do
    "$venv/bin/pip" show -q "${pkg%%[=<>]*}" >/dev/null 2>&1 && continue
    tb_log "pip install $pkg"
    "$venv/bin/pip" install -q "$pkg" || tb_die "pip install $pkg failed"
  done
}

# Installs Debian packages that are not installed yet.
tb_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  tb_log "apt-get install ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >/dev/null || tb_die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || tb_die "apt-get install ${missing[*]} failed"
}

# Waits until host:port accepts TCP connections; fails naming the server.
tb_wait_port() {
  local host=$1 port=$2 timeout=${3:-60} what=${4:-$TB_NAME}
  local deadline=$((SECONDS + timeout))
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    [ $SECONDS -ge $deadline ] && tb_die "$what did not listen on $host:$port within ${timeout}s (logs in $(tb_state))"
    sleep 0.2
  done
}

# Fails if something still listens on a port this server needs after 10 s (a
# process stopped a moment ago may take that long to let go).
tb_port_free() {
  local port=$1 deadline=$((SECONDS + 10))
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      tb_die "port $port is already in use: stop what holds it (\`$0 stop\` if it is a previous run)"
    fi
    sleep 0.2
  done
}

# Starts a command in the background, logging to <state>/<label>.log, and records its PID.
#
# With STRATA_TESTBED_CPUS set (a taskset list such as "0"), the server runs on
# those CPUs only: benchmarks keep a co-located store off the CPU that takes the
# disk's interrupts (deploy/bench/sync_probe.py), as a remote store would be.
tb_spawn() {
  local label=$1; shift
  local state; state=$(tb_state)
  if [ -n "${STRATA_TESTBED_CPUS:-}" ]; then
    set -- taskset -c "$STRATA_TESTBED_CPUS" "$@"
  fi
  setsid "$@" >"$state/$label.log" 2>&1 < /dev/null &
  echo "$!" >>"$state/pids"
}

# Stops every process this server recorded: TERM, then KILL after a grace period.
tb_stop_recorded() {
  local state; state=$(tb_state)
  [ -f "$state/pids" ] || { tb_log "not running"; return 0; }
  local pids; pids=$(cat "$state/pids")
  for pid in $pids; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  local deadline=$((SECONDS + 10))
  for pid in $pids; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$state/pids"
  tb_log "stopped"
}

# Writes the connection settings that tests and people read.
tb_write_env() {
  local state; state=$(tb_state)
  cat >"$state/env"
  tb_log "ready; settings in $state/env:"
  sed 's/^/    /' "$state/env" >&2
}

tb_main() {
  case "${1:-}" in
    install) tb_install ;;
    start)
      tb_install
      # A start that fails half way stops what it had started.
      trap 'rc=$?; [ $rc -ne 0 ] && tb_stop_recorded; exit $rc' EXIT
      tb_start
      trap - EXIT ;;
    stop) tb_stop ;;
    env) cat "$(tb_state)/env" ;;
    *) echo "usage: $0 install|start|stop|env" >&2; exit 2 ;;
  esac
}
