#!/usr/bin/env bash
# Builds buildkitd and buildctl from the official Go module (github.com/moby/buildkit,
# the version go.mod requires) into a cache outside the work tree, keyed by
# version, so later runs and CI's fresh clone reuse them. runc comes from Debian.
# Prints the cache directory on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '($1=="require" && $2=="github.com/moby/buildkit") {print $3; exit} ($1=="github.com/moby/buildkit" && $2 ~ /^v/) {print $2; exit}' "$here/go.mod")
[ -n "$version" ] || { echo "cannot read the buildkit version from go.mod" >&2; exit 1; }
cache=${SKIFF_CLUSTER_CACHE:-$HOME/.cache/skiff}/buildkit-$version
mkdir -p "$cache"
export GOFLAGS=-buildvcs=false CGO_ENABLED=${CGO_ENABLED:-0}
jobs=${SKIFF_BUILD_JOBS:-2}
ldflags="-s -w -X github.com/moby/buildkit/version.Version=$version -X github.com/moby/buildkit/version.Package=github.com/moby/buildkit"
need=()
for b in buildkitd buildctl; do
  [ -x "$cache/$b" ] || need+=("github.com/moby/buildkit/cmd/$b")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "buildkit: building ${need[*]##*/} $version (first time on this machine; takes a few minutes)" >&2
  (cd "$here" && go build -p "$jobs" -trimpath -ldflags "$ldflags" -o "$cache/" "${need[@]}")
fi
echo "$cache"
