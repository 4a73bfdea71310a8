#!/usr/bin/env bash
# Builds kwok (sigs.k8s.io/kwok, simulated nodes and pod lifecycles for the
# second, simulated test cluster) from the official Go module, the version
# go.mod requires, into a cache outside the work tree keyed by version, so later
# runs and CI's fresh clone reuse it. Prints the cache directory on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '($1=="require" && $2=="sigs.k8s.io/kwok") {print $3; exit} ($1=="sigs.k8s.io/kwok" && $2 ~ /^v/) {print $2; exit}' "$here/go.mod")
[ -n "$version" ] || { echo "cannot read the kwok version from go.mod" >&2; exit 1; }
cache=${SKIFF_CLUSTER_CACHE:-$HOME/.cache/skiff}/kwok-$version
mkdir -p "$cache"
export GOFLAGS=-buildvcs=false CGO_ENABLED=${CGO_ENABLED:-0}
jobs=${SKIFF_BUILD_JOBS:-2}
if [ ! -x "$cache/kwok" ]; then
  echo "kwok: building kwok $version (first time on this machine; takes a few minutes)" >&2
  (cd "$here" && go build -p "$jobs" -trimpath -ldflags "-s -w" \
    -o "$cache/kwok" sigs.k8s.io/kwok/cmd/kwok)
fi
echo "$cache"
