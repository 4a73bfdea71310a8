#!/usr/bin/env bash
# Builds the test cluster's binaries from the official Go modules into a cache
# outside the work tree, keyed by version, so a second `scripts/cluster up` and
# CI's fresh clone reuse them. Prints the cache directory on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# module_version DIR MODULE: the version go.mod requires (single-line or block form).
module_version() {
  awk -v m="$2" '($1=="require" && $2==m) {print $3; exit} ($1==m && $2 ~ /^v/) {print $2; exit}' "$1/go.mod"
}
k8s_version=$(module_version "$here/k8s" k8s.io/kubernetes)
etcd_version=$(module_version "$here/etcd" go.etcd.io/etcd/server/v3)
[ -n "$k8s_version" ] && [ -n "$etcd_version" ] || { echo "cannot read versions from go.mod" >&2; exit 1; }
cache=${SKIFF_CLUSTER_CACHE:-$HOME/.cache/skiff}/k8s-${k8s_version}-etcd-${etcd_version}
mkdir -p "$cache"
export GOFLAGS=-buildvcs=false CGO_ENABLED=${CGO_ENABLED:-1}
jobs=${SKIFF_BUILD_JOBS:-2}

minor=${k8s_version#v1.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
cgo=k8s.io/client-go/pkg/version
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w"
for p in $pkg $cgo; do
  ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=$date"
done

need=()
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
  [ -x "$cache/$b" ] || need+=("k8s.io/kubernetes/cmd/$b")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "cluster: building ${need[*]##*/} $k8s_version (first time on this machine; takes a while)" >&2
  (cd "$here/k8s" && go build -p "$jobs" -trimpath -ldflags "$ldflags" -o "$cache/" "${need[@]}")
fi
if [ ! -x "$cache/etcd" ]; then
  echo "cluster: building etcd $etcd_version" >&2
  (cd "$here/etcd" && go build -p "$jobs" -trimpath -ldflags "-s -w" -o "$cache/etcd" go.etcd.io/etcd/server/v3)
fi
echo "$cache"
