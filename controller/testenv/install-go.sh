#!/usr/bin/env bash
# Installs a Go toolchain new enough for proxy-wasm modules (GOOS=wasip1, -buildmode=c-shared,
# //go:wasmexport: Go >= 1.24), from Debian sid's golang-1.NN-go and golang-1.NN-src packages,
# fetched with a private apt configuration (sid-apt.sh) and unpacked into a private root.
#
# Cached under ${XDG_CACHE_HOME:-$HOME/.cache}/wasmplug/go-<package version>; when one is cached,
# nothing is downloaded. Use it with GOTOOLCHAIN=local GOPROXY=off CGO_ENABLED=0 (no module proxy
# here: standard library only).
#
# Progress goes to stderr. The last line on stdout is the `go` binary's path (GOROOT is two
# directories up).
set -euo pipefail

CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/wasmplug"
step="start"
log() { echo "install-go: $*" >&2; }
trap 'rc=$?; log "FAILED in step '"'"'$step'"'"' (exit $rc)"; exit $rc' ERR

mkdir -p "$CACHE_DIR"
cached="$(ls -1td "$CACHE_DIR"/go-* 2>/dev/null | grep -v '\.tmp' | head -n 1 || true)"
go_in() { ls -1d "$1"/usr/lib/go-1.*/bin/go 2>/dev/null | sort -V | tail -n 1; }
if [[ -n "$cached" && -x "$(go_in "$cached")" ]]; then
    log "using cached $cached"
    go_in "$cached"
    exit 0
fi

step="prepare a private apt configuration"
work="$(mktemp -d "$CACHE_DIR/go-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# shellcheck source=sid-apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/sid-apt.sh"
sid_apt_setup "$work"

step="apt-get update (Debian sid package lists)"
log "fetching Debian sid package lists"
apt-get "${APT_OPTS[@]}" update -qq --error-on=any >&2

step="find the Go version golang-go points at"
go_pkg="$(apt-cache "${APT_OPTS[@]}" show --no-all-versions golang-go | sed -n 's/^Depends: .*\(golang-1\.[0-9]*-go\).*/\1/p' | head -n 1)"
[[ -n "$go_pkg" ]] || { log "sid's golang-go names no golang-1.NN-go"; false; }
src_pkg="${go_pkg%-go}-src"
version="$(apt-cache "${APT_OPTS[@]}" show --no-all-versions "$go_pkg" | sed -n 's/^Version: //p' | head -n 1)"
target="$CACHE_DIR/go-${version//[^A-Za-z0-9.+-]/_}"
log "sid has $go_pkg $version"

step="download $go_pkg and $src_pkg (apt-get download)"
(cd "$work" && apt-get "${APT_OPTS[@]}" download -qq "$go_pkg" "$src_pkg" >&2)

step="unpack (dpkg-deb -x)"
for deb in "$work"/*.deb; do
    dpkg-deb -x "$deb" "$work/root"
done
goroot="$(cd "$work/root" && ls -1d usr/lib/go-1.* | sort -V | tail -n 1)"
[[ -x "$work/root/$goroot/bin/go" ]] || { log "no usr/lib/go-1.*/bin/go in the packages"; false; }
# Debian links GOROOT's src, pkg and test into /usr/share/go-1.NN: make absolute links relative,
# so the root works where it is cached.
find "$work/root" -type l | while read -r link; do
    dest="$(readlink "$link")"
    if [[ "$dest" == /* ]]; then
        ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$work/root$dest")" "$link"
    fi
done

step="check and cache the toolchain"
rm -rf "$target.tmp"
mv "$work/root" "$target.tmp"
GOROOT="$target.tmp/$goroot" GOTOOLCHAIN=local "$target.tmp/$goroot/bin/go" version >&2
mv "$target.tmp" "$target"
log "cached $target"
echo "$target/$goroot/bin/go"
