# Builds commands of the official Go modules the test bed runs (Kubernetes,
# etcd, buildkit, kwok) into a cache outside the work tree, keyed by version,
# so later runs and CI's fresh clone reuse them. Sourced by
# test/{cluster,buildkit,kwok}/build.sh, which print their cache folder.

# module_version DIR MODULE: the version DIR/go.mod requires (single-line or block form).
module_version() {
  awk -v m="$2" '($1=="require" && $2==m) {print $3; exit} ($1==m && $2 ~ /^v/) {print $2; exit}' "$1/go.mod"
}

# build_cache NAME: the cache folder NAME (made if missing).
build_cache() {
  local dir=${SKIFF_CLUSTER_CACHE:-$HOME/.cache/skiff}/$1
  mkdir -p "$dir"
  echo "$dir"
}

# build_missing LABEL MODULE_DIR CACHE VERSION NOTE LDFLAGS BINARY=PACKAGE...:
# one `go build` in MODULE_DIR of the packages whose binary is not in CACHE yet;
# nothing when all are there.
build_missing() {
  local label=$1 dir=$2 cache=$3 version=$4 note=$5 ldflags=$6 entry names=() packages=(); shift 6
  for entry in "$@"; do
    [ -x "$cache/${entry%%=*}" ] && continue
    names+=("${entry%%=*}"); packages+=("${entry#*=}")
  done
  [ ${#packages[@]} -gt 0 ] || return 0
  echo "$label: building ${names[*]} $version${note:+ ($note)}" >&2
  # One package may be named for its binary; several are each named for their last path element.
  local out=$cache/
  [ ${#packages[@]} -eq 1 ] && out=$cache/${names[0]}
  (cd "$dir" && GOFLAGS=-buildvcs=false go build -p "${SKIFF_BUILD_JOBS:-2}" -trimpath -ldflags "$ldflags" -o "$out" "${packages[@]}")
}
