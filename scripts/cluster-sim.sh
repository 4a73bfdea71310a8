# The simulated cluster of `scripts/cluster ... --sim`. Sourced by scripts/cluster;
# starting, awaiting and measuring its components is control-plane.sh's, as for the real one.
#
# A second, independent control plane from the same cached binaries as the real
# cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler), on
# other loopback ports, with its own PKI and data under $SKIFF_STATE/cluster-sim.
# Its nodes are simulated by kwok (sigs.k8s.io/kwok, built by test/kwok/build.sh):
# the real controllers create ReplicaSets and pods, the real scheduler places
# them on kwok's nodes, and kwok moves them through their phases by the stages
# in test/kwok/stages.yaml. Nothing runs in a pod: there are no image pulls and
# no containers, which is what lets 15,000 pods fit on a 2-core machine.
#
# Settings (environment, read at `up`):
#   --nodes N / SKIFF_SIM_NODES        simulated nodes (default 50; 500 works)
#   SKIFF_SIM_READY_DELAY_MS           a scheduled pod turns Running+Ready after
#                                      this delay (default 1000) ...
#   SKIFF_SIM_READY_JITTER_MS          ... plus up to this much more (default 1000)
#   SKIFF_SIM_FAIL_DELAY_MS            a pod chosen to fail crashes after this (default 1000)
# Per pod (annotations on a pod template):
#   sim.skiff.test/ready-delay-ms: "5000"      this pod's own delay
#   sim.skiff.test/fail: "true"                the pod's first container crashes
#   sim.skiff.test/fail-on-nodes: "sim-node-0,sim-node-7"
#                                              it crashes only when scheduled there:
#                                              a bad node, a chosen share of pods
#   sim.skiff.test/exit-code, sim.skiff.test/message   what the crash reports
# A crashed pod shows what the kubelet shows for a crash loop: Running, not
# Ready, its container waiting in CrashLoopBackOff with the last termination's
# exit code (reason Error).
#
# The sim apiserver's audit log ($SKIFF_STATE/cluster-sim/audit.log) holds the
# requests of the admin user (skiff, kubectl) only, for the benchmarks.
#
# Network rule: every listener binds to 127.0.0.1; kwok makes no connections
# but to the sim apiserver.

SIM=$SKIFF_STATE/cluster-sim
SIM_PKI=$SIM/pki
SIM_KUBECONFIG_OUT=${SKIFF_SIM_KUBECONFIG:-$repo/.skiff/kubeconfig-sim}
SIM_ADMIN_KC=$SIM/admin.kubeconfig
SIM_API_PORT=${SKIFF_SIM_API_PORT:-7443}
SIM_ETCD_CLIENT=127.0.0.1:12379
SIM_ETCD_PEER=127.0.0.1:12380
SIM_CM_PORT=10357
SIM_SCHED_PORT=10359
SIM_KWOK_ADDR=127.0.0.1:10347
SIM_SERVICE_RANGE=10.97.0.0/16
SIM_NODES=${SIM_NODES:-${SKIFF_SIM_NODES:-50}}
SIM_COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

sim_pidfile() { component_pidfile sim "$1"; }

sim_start_bg() { start_component sim "$@"; }
sim_fail_with_log() { component_failed sim "$1" "$2"; }
sim_await() { await_component sim "$@"; }

sim_kubectl() { "$BIN/kubectl" --kubeconfig "$SIM_ADMIN_KC" "$@"; }

sim_etcd_ok() { curl -sf "http://$SIM_ETCD_CLIENT/health" | grep -q '"health":"true"'; }
sim_apiserver_ok() { curl -sf --cacert "$SIM_PKI/ca.crt" "https://127.0.0.1:$SIM_API_PORT/readyz" | grep -q '^ok$'; }
sim_cm_ok() { curl -sfk "https://127.0.0.1:$SIM_CM_PORT/healthz" | grep -q '^ok$'; }
sim_sched_ok() { curl -sfk "https://127.0.0.1:$SIM_SCHED_PORT/healthz" | grep -q '^ok$'; }
sim_kwok_ok() { curl -sf "http://$SIM_KWOK_ADDR/healthz" | grep -q '^ok$'; }

sim_component_ok() {
  pid_alive "$(sim_pidfile "$1")" || return 1
  case $1 in
    etcd) sim_etcd_ok ;;
    kube-apiserver) sim_apiserver_ok ;;
    kube-controller-manager) sim_cm_ok ;;
    kube-scheduler) sim_sched_ok ;;
    kwok) sim_kwok_ok ;;
  esac
}

sim_pki_up() {
  [ -f "$SIM_PKI/done" ] && return 0
  log "generating the sim cluster's CA and certificates"
  new_ca "$SIM_PKI" skiff-sim-cluster-ca
  # issue() writes into $PKI: point it at the sim's for the duration.
  local PKI=$SIM_PKI client=extendedKeyUsage=clientAuth
  issue apiserver "/CN=kube-apiserver" "extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.97.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  issue admin "/O=system:masters/CN=skiff-sim-admin" "$client"
  issue controller-manager "/CN=system:kube-controller-manager" "$client"
  issue scheduler "/CN=system:kube-scheduler" "$client"
  # kwok writes node and pod status, leases, and deletes pods: an admin identity.
  issue kwok "/O=system:masters/CN=kwok" "$client"
  service_account_keys "$SIM_PKI"
  touch "$SIM_PKI/done"
}

sim_etcd_up() {
  sim_component_ok etcd && return 0
  mkdir -p "$SIM/etcd"; chmod 700 "$SIM/etcd"
  sim_start_bg etcd "$BIN/etcd" --name skiff-sim --data-dir "$SIM/etcd" \
    --listen-client-urls "http://$SIM_ETCD_CLIENT" --advertise-client-urls "http://$SIM_ETCD_CLIENT" \
    --listen-peer-urls "http://$SIM_ETCD_PEER" --initial-advertise-peer-urls "http://$SIM_ETCD_PEER" \
    --initial-cluster "skiff-sim=http://$SIM_ETCD_PEER" --initial-cluster-state new \
    --unsafe-no-fsync --quota-backend-bytes 8589934592 --log-level warn \
    --listen-metrics-urls "" --auto-compaction-mode periodic --auto-compaction-retention 5m
  sim_await 60 etcd sim_etcd_ok
}

sim_apiserver_up() {
  sim_component_ok kube-apiserver && return 0
  # No node is real, so the `kubernetes` Service gets no endpoints (reconciler
  # none) and the advertised address can stay loopback. The in-flight limits
  # are raised for 15,000 pods' worth of controller, scheduler and kwok
  # traffic; priority and fairness stays on, so overload still answers 429.
  # The audit log records the requests of the admin user alone (skiff and
  # kubectl run as it; controllers, scheduler and kwok have identities of their
  # own): the benchmarks count each client's API requests from it.
  cat >"$SIM/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: Metadata
  users: [skiff-sim-admin]
- level: None
EOF
  # TaintNodesByCondition is off: it puts node.kubernetes.io/not-ready:NoSchedule
  # on every node as it is created, and only the node lifecycle controller (off
  # here, see below) would take it away again, so on an empty etcd no pod could
  # ever be scheduled. kwok reports the nodes Ready from their first second.
  sim_start_bg kube-apiserver "$BIN/kube-apiserver" \
    --audit-policy-file "$SIM/audit-policy.yaml" --audit-log-path "$SIM/audit.log" \
    --audit-log-format json --audit-log-maxsize 200 --audit-log-maxbackup 1 --audit-log-mode blocking \
    --etcd-servers "http://$SIM_ETCD_CLIENT" \
    --bind-address 127.0.0.1 --secure-port "$SIM_API_PORT" --advertise-address 127.0.0.1 \
    --endpoint-reconciler-type none \
    --tls-cert-file "$SIM_PKI/apiserver.crt" --tls-private-key-file "$SIM_PKI/apiserver.key" \
    --client-ca-file "$SIM_PKI/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$SIM_PKI/sa.pub" --service-account-signing-key-file "$SIM_PKI/sa.key" \
    --authorization-mode Node,RBAC --service-cluster-ip-range "$SIM_SERVICE_RANGE" \
    --allow-privileged=true --profiling=false --cert-dir "$SIM/apiserver" \
    --max-requests-inflight 1600 --max-mutating-requests-inflight 800 \
    --disable-admission-plugins TaintNodesByCondition \
    --event-ttl 30m --watch-cache-sizes pods#20000
  sim_await 90 kube-apiserver sim_apiserver_ok
}

sim_controller_manager_up() {
  sim_component_ok kube-controller-manager && return 0
  local lifecycle=,-node-lifecycle-controller
  [ "${SKIFF_SIM_NODE_LIFECYCLE:-}" = 1 ] && lifecycle=
  # Client limits raised (the default 20 qps would take minutes to create
  # 15,000 pods); controllers with no use here (no cloud, no volumes on
  # simulated nodes, no bootstrap tokens) are off to save CPU. So is the node
  # lifecycle controller: when 15,000 pods keep 2 cores busy, kwok's lease
  # renewals can come late, and that controller would mark every pod of a
  # "late" node not Ready, which no kubelet is there to undo.
  # SKIFF_SIM_NODE_LIFECYCLE=1 keeps it (node failure experiments).
  sim_start_bg kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$SIM/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$SIM/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$SIM/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SIM_CM_PORT" --leader-elect=false \
    --controllers "*,-bootstrap-signer-controller,-token-cleaner-controller,-persistentvolume-attach-detach-controller,-persistentvolume-expander-controller,-ephemeral-volume-controller,-cloud-node-lifecycle-controller,-service-lb-controller,-node-route-controller${lifecycle}" \
    --use-service-account-credentials \
    --service-account-private-key-file "$SIM_PKI/sa.key" --root-ca-file "$SIM_PKI/ca.crt" \
    --cluster-signing-cert-file "$SIM_PKI/ca.crt" --cluster-signing-key-file "$SIM_PKI/ca.key" \
    --cluster-name skiff-sim --allocate-node-cidrs=false --profiling=false \
    --kube-api-qps 1000 --kube-api-burst 2000 \
    --concurrent-deployment-syncs 20 --concurrent-replicaset-syncs 20 --concurrent-gc-syncs 40
  sim_await 60 kube-controller-manager sim_cm_ok
}

sim_scheduler_up() {
  sim_component_ok kube-scheduler && return 0
  cat >"$SIM/scheduler-config.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $SIM/scheduler.kubeconfig
  qps: 1000
  burst: 2000
leaderElection: {leaderElect: false}
# Scoring every one of 500 nodes for 15,000 pods is what a 2-core machine
# cannot afford; a sample of them places pods just as evenly here.
percentageOfNodesToScore: 10
EOF
  sim_start_bg kube-scheduler "$BIN/kube-scheduler" --config "$SIM/scheduler-config.yaml" \
    --authentication-kubeconfig "$SIM/scheduler.kubeconfig" \
    --authorization-kubeconfig "$SIM/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SIM_SCHED_PORT" --profiling=false
  sim_await 60 kube-scheduler sim_sched_ok
}

sim_kwok_up() {
  # Stages are rendered at every `up`, so a changed delay takes effect on a restart.
  sed -e "s/@READY_DELAY_MS@/${SKIFF_SIM_READY_DELAY_MS:-1000}/" \
    -e "s/@READY_JITTER_MS@/${SKIFF_SIM_READY_JITTER_MS:-1000}/" \
    -e "s/@FAIL_DELAY_MS@/${SKIFF_SIM_FAIL_DELAY_MS:-1000}/" \
    "$repo/test/kwok/stages.yaml" >"$SIM/kwok.yaml.new"
  if sim_component_ok kwok && cmp -s "$SIM/kwok.yaml.new" "$SIM/kwok.yaml"; then
    rm -f "$SIM/kwok.yaml.new"; return 0
  fi
  stop_pid "$(sim_pidfile kwok)" "sim kwok"
  mv "$SIM/kwok.yaml.new" "$SIM/kwok.yaml"
  sim_start_bg kwok "$KWOK_BIN/kwok" --kubeconfig "$SIM/kwok.kubeconfig" --config "$SIM/kwok.yaml" \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --server-address "$SIM_KWOK_ADDR" --node-lease-duration-seconds 40 \
    --cidr 10.128.0.1/16 --node-ip 10.127.0.1 --v WARN
  sim_await 60 kwok sim_kwok_ok
}

# sim_check_schedulable: the bed's own proof, at every `up`, that the simulated
# nodes take pods: no node carries a taint (the tests' pods tolerate none), and
# a pod is scheduled and turns Ready within 60 s.
sim_check_schedulable() {
  local tainted ready=
  tainted=$(sim_kubectl get nodes -l type=kwok \
    -o jsonpath='{range .items[?(@.spec.taints)]}{.metadata.name}: {.spec.taints[*].key}{"\n"}{end}')
  if [ -n "$tainted" ]; then
    log "error: simulated nodes carry taints that no test pod tolerates:"
    printf '%s\n' "$tainted" | head -5 >&2
    exit 1
  fi
  sim_kubectl -n default delete pod skiff-bed-check --ignore-not-found --grace-period 0 --force >/dev/null 2>&1 || true
  printf '%s\n' 'apiVersion: v1' 'kind: Pod' 'metadata: {name: skiff-bed-check, namespace: default}' \
    'spec: {containers: [{name: check, image: skiff-bed-check.invalid/none}]}' |
    sim_kubectl apply -f - >/dev/null
  local t
  for t in $(seq 1 300); do
    ready=$(sim_kubectl -n default get pod skiff-bed-check \
      -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
    [ "$ready" = True ] && break
    sleep 0.2
  done
  if [ "$ready" != True ]; then
    log "error: a pod on the simulated cluster was not Ready within 60 s; its events:"
    sim_kubectl -n default get events --field-selector involvedObject.name=skiff-bed-check \
      -o jsonpath='{range .items[*]}{.reason}: {.message}{"\n"}{end}' 2>/dev/null | tail -5 >&2
    exit 1
  fi
  sim_kubectl -n default delete pod skiff-bed-check --grace-period 0 --force >/dev/null 2>&1 || true
}

# sim_nodes_up N: exactly N simulated nodes, sim-node-0 … sim-node-(N-1).
sim_nodes_up() {
  local n=$1 i have
  have=$(sim_kubectl get nodes -l type=kwok -o name 2>/dev/null | wc -l)
  if [ "$have" -lt "$n" ]; then
    log "creating $((n - have)) simulated nodes ($n in all)"
    for i in $(seq 0 $((n - 1))); do
      cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: sim-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {type: kwok, kubernetes.io/hostname: sim-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
    done | sim_kubectl apply --server-side --field-manager skiff-test-bed -f - >/dev/null
  elif [ "$have" -gt "$n" ]; then
    log "removing $((have - n)) simulated nodes ($n remain)"
    for i in $(seq "$n" $((have - 1))); do echo "node/sim-node-$i"; done |
      xargs -r "$BIN/kubectl" --kubeconfig "$SIM_ADMIN_KC" delete --wait=false >/dev/null
  fi
  local t
  for t in $(seq 1 300); do
    [ "$(sim_kubectl get nodes -l type=kwok --no-headers 2>/dev/null | awk '$2 == "Ready"' | wc -l)" -ge "$n" ] && return 0
    sleep 0.2
  done
  sim_fail_with_log kwok "the $n simulated nodes did not become Ready"
}

sim_up() {
  local t0 t; t0=$(now)
  ensure_pkgs openssl:openssl curl:curl
  BIN=$("$repo/test/cluster/build.sh")
  t=$(now); KWOK_BIN=$("$repo/test/kwok/build.sh"); log "kwok: $KWOK_BIN ($(since "$t"))"
  mkdir -p "$SIM"
  sim_pki_up
  local c
  for c in admin controller-manager scheduler kwok; do
    write_kubeconfig_of "$SIM/$c.kubeconfig" skiff-sim "skiff-sim $SIM_PKI $SIM_API_PORT $c"
  done
  t=$(now); sim_etcd_up; sim_apiserver_up; log "sim etcd, kube-apiserver: $(since "$t")"
  t=$(now); sim_controller_manager_up; sim_scheduler_up; sim_kwok_up
  log "sim controller-manager, scheduler, kwok: $(since "$t")"
  t=$(now); sim_nodes_up "$SIM_NODES"; log "sim nodes: $SIM_NODES Ready ($(since "$t"))"
  local i
  for i in $(seq 1 300); do sim_kubectl -n default get serviceaccount default >/dev/null 2>&1 && break; sleep 0.2; done
  sim_kubectl -n default get serviceaccount default >/dev/null 2>&1 ||
    sim_fail_with_log kube-controller-manager "the default ServiceAccount was not created"
  t=$(now); sim_check_schedulable; log "sim nodes take pods: a pod Ready in $(since "$t")"
  write_kubeconfig_of "$SIM_KUBECONFIG_OUT" skiff-sim "skiff-sim $SIM_PKI $SIM_API_PORT admin"
  write_shared_kubeconfig
  mkdir -p "$(dirname "$KUBECTL_LINK")"; [ -e "$KUBECTL_LINK" ] || ln -sfn "$BIN/kubectl" "$KUBECTL_LINK"
  log "sim cluster up in $(since "$t0"): context skiff-sim in $KUBECONFIG_OUT and $SIM_KUBECONFIG_OUT, $SIM_NODES nodes"
  log "memory (RSS of the sim cluster's processes): $(sim_rss_mb) MiB"
}

sim_rss_mb() { components_rss_mb sim "${SIM_COMPONENTS[@]}"; }

sim_down() {
  local c
  stop_pid "$(sim_pidfile kwok)" "sim kwok"
  for c in kube-scheduler kube-controller-manager kube-apiserver; do
    stop_pid "$(sim_pidfile "$c")" "sim $c" &
  done
  wait
  stop_pid "$(sim_pidfile etcd)" "sim etcd"
  rm -rf "$SIM"
  rm -f "$SIM_KUBECONFIG_OUT"
  write_shared_kubeconfig
  log "sim cluster down"
}

sim_status() {
  local rc=0 c
  for c in "${SIM_COMPONENTS[@]}"; do
    if sim_component_ok "$c" >/dev/null 2>&1; then echo "sim $c: up"; else echo "sim $c: down"; rc=1; fi
  done
  if [ $rc -eq 0 ]; then
    BIN=$(dirname "$(readlink "$KUBECTL_LINK")")
    echo "sim nodes Ready: $(sim_kubectl get nodes -l type=kwok --no-headers 2>/dev/null | awk '$2 == "Ready"' | wc -l)"
    echo "sim memory: $(sim_rss_mb) MiB RSS"
  fi
  exit $rc
}
