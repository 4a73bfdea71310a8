# Shared helpers for skiff's service scripts. Sourced, not run.
# Everything here binds to or talks to loopback only.

SKIFF_STATE=${SKIFF_STATE:-/var/lib/skiff-dev}
SKIFF_LOGS=$SKIFF_STATE/logs
# The marker lets `scripts/testbed wipe` delete the folder: only one these scripts
# made (or the default one), never a SKIFF_STATE that already held something else.
if [ ! -d "$SKIFF_STATE" ] || [ "$SKIFF_STATE" = /var/lib/skiff-dev ]; then
  mkdir -p "$SKIFF_STATE"
  [ -f "$SKIFF_STATE/.skiff-test-bed" ] || : >"$SKIFF_STATE/.skiff-test-bed"
fi
mkdir -p "$SKIFF_LOGS"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

apt_updated=0
# ensure_pkgs CMD:PKG ...: installs a Debian package when its command is missing.
ensure_pkgs() {
  local missing=() pair cmd pkg
  for pair in "$@"; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    if [[ $cmd == /* ]]; then [ -e "$cmd" ] || missing+=("$pkg")
    else command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg"); fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}; run as root or install them"
  log "installing ${missing[*]}"
  if [ $apt_updated -eq 0 ]; then apt-get update -qq >&2; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# pid_alive FILE: the process recorded in FILE is running.
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_process PID NAME [SECONDS]: TERM, wait up to SECONDS (default 15) for it
# to exit, then KILL. Nothing to do when PID is not running.
stop_process() {
  local pid=$1 name=$2 tenths=$((${3:-15} * 10)) i
  kill -0 "$pid" 2>/dev/null || return 0
  log "stopping $name (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 "$tenths"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# stop_pid FILE [NAME]: stop_process of the pid in FILE; removes FILE.
stop_pid() {
  local f=$1
  [ -f "$f" ] || return 0
  stop_process "$(cat "$f")" "${2:-$1}"
  rm -f "$f"
}

# wait_for SECONDS DESCRIPTION CMD...: retries CMD until it succeeds.
wait_for() {
  local secs=$1 what=$2 i; shift 2
  for i in $(seq 1 $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "$what did not come up within ${secs}s"
}
