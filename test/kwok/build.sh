#!/usr/bin/env bash
# Builds kwok (sigs.k8s.io/kwok, simulated nodes and pod lifecycles for the
# second, simulated test cluster) from the official Go module, the version
# go.mod requires, into a cache outside the work tree keyed by version, so later
# runs and CI's fresh clone reuse it. Prints the cache directory on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/go-module-build.sh"
version=$(module_version "$here" sigs.k8s.io/kwok)
[ -n "$version" ] || { echo "cannot read the kwok version from go.mod" >&2; exit 1; }
cache=$(build_cache "kwok-$version")
export CGO_ENABLED=${CGO_ENABLED:-0}
build_missing kwok "$here" "$cache" "$version" "first time on this machine; takes a few minutes" "-s -w" kwok=sigs.k8s.io/kwok/cmd/kwok
echo "$cache"
