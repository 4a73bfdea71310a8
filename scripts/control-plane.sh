# The control-plane processes of a test cluster, for scripts/cluster (the real
# cluster) and cluster-sim.sh (the simulated one). Sourced after lib.sh, not run.
#
# A cluster is named by its KEY: "" for the real one (state in
# $SKIFF_STATE/cluster, logs <component>.log), "sim" for the simulated one
# (state in $SKIFF_STATE/cluster-sim, logs sim-<component>.log).

cluster_dir() { echo "$SKIFF_STATE/cluster${1:+-$1}"; }
component_pidfile() { echo "$(cluster_dir "$1")/run/$2.pid"; }
component_logfile() { echo "$SKIFF_LOGS/${1:+$1-}$2.log"; }

# spawn_detached LOG CMD...: CMD in its own session, in the background, with
# only stdin/stdout/stderr open. Inherited descriptors are closed: a daemon
# started under `flock /tmp/skiff-heavy.lock scripts/cluster up` would
# otherwise hold the lock for as long as it runs.
spawn_detached() {
  local log=$1; shift
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null
    done
    exec setsid "$@" </dev/null >>"$log" 2>&1
  ) &
}

# start_component KEY NAME CMD...: runs CMD detached (own session, so a test
# runner's signals don't reach it) with output in the component's log and a pid file.
start_component() {
  local key=$1 name=$2 logf; shift 2
  logf=$(component_logfile "$key" "$name")
  mkdir -p "$(cluster_dir "$key")/run"
  log "starting ${key:+$key }$name"
  echo "=== $(date -u +%FT%TZ) scripts/cluster up${key:+ --$key}: starting $name ===" >>"$logf"
  spawn_detached "$logf" "$@"
  echo $! >"$(component_pidfile "$key" "$name")"
}

# component_failed KEY NAME MESSAGE: the component did not come up; show why.
component_failed() {
  log "error: $3"
  log "--- last lines of $(component_logfile "$1" "$2") ---"
  tail -n 40 "$(component_logfile "$1" "$2")" >&2 2>/dev/null || true
  exit 1
}

# await_component KEY SECONDS NAME CMD...: like wait_for, but fails early if
# the component died, and shows its log either way.
await_component() {
  local key=$1 secs=$2 name=$3 i; shift 3
  for i in $(seq 1 $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    pid_alive "$(component_pidfile "$key" "$name")" || component_failed "$key" "$name" "${key:+$key }$name exited during startup"
    sleep 0.2
  done
  component_failed "$key" "$name" "${key:+$key }$name did not become healthy within ${secs}s"
}

# components_rss_mb KEY COMPONENT...: the resident memory of the running components (pods excluded), in MiB.
components_rss_mb() {
  local key=$1 c kb=0 v f; shift
  for c in "$@"; do
    f=$(component_pidfile "$key" "$c")
    pid_alive "$f" || continue
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$(cat "$f")/status" 2>/dev/null || echo 0)
    kb=$((kb + ${v:-0}))
  done
  echo $((kb / 1024))
}

# new_ca PKI_DIR CN: an empty PKI folder holding a new CA (ca.key, ca.crt).
new_ca() {
  rm -rf "$1"; mkdir -p "$1"; chmod 700 "$1"
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$1/ca.key" -out "$1/ca.crt" -days 3650 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    2>/dev/null
}

# service_account_keys PKI_DIR: the key pair of service-account tokens (the
# apiserver verifies, the controller-manager signs).
service_account_keys() {
  openssl genrsa -out "$1/sa.key" 2048 2>/dev/null
  openssl rsa -in "$1/sa.key" -pubout -out "$1/sa.pub" 2>/dev/null
}
