#!/usr/bin/env bash
# Builds the test cluster's binaries from the official Go modules into a cache
# outside the work tree, keyed by version, so a second `scripts/cluster up` and
# CI's fresh clone reuse them. Prints the cache directory on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/go-module-build.sh"
k8s_version=$(module_version "$here/k8s" k8s.io/kubernetes)
etcd_version=$(module_version "$here/etcd" go.etcd.io/etcd/server/v3)
[ -n "$k8s_version" ] && [ -n "$etcd_version" ] || { echo "cannot read versions from go.mod" >&2; exit 1; }
cache=$(build_cache "k8s-${k8s_version}-etcd-${etcd_version}")
export CGO_ENABLED=${CGO_ENABLED:-1}

minor=${k8s_version#v1.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
cgo=k8s.io/client-go/pkg/version
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w"
for p in $pkg $cgo; do
  ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=$date"
done

components=()
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do components+=("$b=k8s.io/kubernetes/cmd/$b"); done
build_missing cluster "$here/k8s" "$cache" "$k8s_version" "first time on this machine; takes a while" "$ldflags" "${components[@]}"
build_missing cluster "$here/etcd" "$cache" "$etcd_version" "" "-s -w" etcd=go.etcd.io/etcd/server/v3
echo "$cache"
