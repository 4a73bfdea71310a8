#!/usr/bin/env bash
# Builds buildkitd and buildctl from the official Go module (github.com/moby/buildkit,
# the version go.mod requires) into a cache outside the work tree, keyed by
# version, so later runs and CI's fresh clone reuse them. runc comes from Debian.
# Prints the cache directory on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/go-module-build.sh"
version=$(module_version "$here" github.com/moby/buildkit)
[ -n "$version" ] || { echo "cannot read the buildkit version from go.mod" >&2; exit 1; }
cache=$(build_cache "buildkit-$version")
export CGO_ENABLED=${CGO_ENABLED:-0}
build_missing buildkit "$here" "$cache" "$version" "first time on this machine; takes a few minutes" \
  "-s -w -X github.com/moby/buildkit/version.Version=$version -X github.com/moby/buildkit/version.Package=github.com/moby/buildkit" \
  buildkitd=github.com/moby/buildkit/cmd/buildkitd buildctl=github.com/moby/buildkit/cmd/buildctl
echo "$cache"
