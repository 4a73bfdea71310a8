#!/usr/bin/env bash
# Builds helm (helm.sh/helm/v4, the chart engine skiff renders charts with and
# the peer the P12-P14 benchmarks run against) from the official Go module, the
# version go.mod requires, into a cache outside the work tree keyed by version,
# so later runs and CI's fresh clone reuse it. Prints the cache directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/go-module-build.sh"
version=$(module_version "$here" helm.sh/helm/v4)
[ -n "$version" ] || { echo "cannot read the helm version from go.mod" >&2; exit 1; }
cache=$(build_cache "helm-$version")
export CGO_ENABLED=${CGO_ENABLED:-0}
build_missing helm "$here" "$cache" "$version" "first time on this machine; takes a few minutes" \
  "-s -w -X helm.sh/helm/v4/internal/version.version=$version" helm=helm.sh/helm/v4/cmd/helm
echo "$cache"
