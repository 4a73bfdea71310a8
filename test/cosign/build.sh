#!/usr/bin/env bash
# Builds cosign (github.com/sigstore/cosign/v2, the signing tool `skiff build
# --sign` and `deploy.verify` call) from the official Go module, the version
# go.mod requires, into a cache outside the work tree keyed by version, so later
# runs and CI's fresh clone reuse it. Prints the cache directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/go-module-build.sh"
version=$(module_version "$here" github.com/sigstore/cosign/v2)
[ -n "$version" ] || { echo "cannot read the cosign version from go.mod" >&2; exit 1; }
cache=$(build_cache "cosign-$version")
export CGO_ENABLED=${CGO_ENABLED:-0}
build_missing cosign "$here" "$cache" "$version" "first time on this machine; takes a few minutes" \
  "-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$version" cosign=github.com/sigstore/cosign/v2/cmd/cosign
echo "$cache"
