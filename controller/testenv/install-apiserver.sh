#!/usr/bin/env bash
# Installs what the API-server tests (wasmplug-testenv) need:
#   - etcd, from Debian's `etcd-server` package, when `etcd` is not on PATH;
#   - apiextensions-apiserver, built from Debian sid's Go source packages.
#
# The build uses a private apt configuration (sid-apt.sh), so the system's apt sources and dpkg
# database are never touched. The binary is cached
# under ${XDG_CACHE_HOME:-$HOME/.cache}/wasmplug/apiextensions-apiserver-<package version>; when
# one is cached, nothing is downloaded or built. Set WASMPLUG_APISERVER_REBUILD=1 to check sid for
# a newer package version anyway.
#
# Progress goes to stderr. The last line on stdout is the binary's path.
set -euo pipefail

CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/wasmplug"
PACKAGES=(golang-k8s-apiextensions-apiserver-dev golang-go)

step="start"
log() { echo "install-apiserver: $*" >&2; }
on_error() {
    local rc=$?
    echo "install-apiserver: FAILED in step '$step' (exit $rc)" >&2
    exit "$rc"
}
trap on_error ERR

newest_cached() {
    # Newest by modification time; empty when none is cached.
    ls -1t "$CACHE_DIR"/apiextensions-apiserver-* 2>/dev/null | grep -v '\.tmp' | head -n 1 || true
}

# --- etcd -----------------------------------------------------------------------------------
step="install etcd (apt-get install etcd-server)"
if ! command -v etcd >/dev/null 2>&1; then
    log "etcd not found: installing Debian's etcd-server"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >&2
fi
command -v etcd >/dev/null 2>&1 || { log "etcd is still not on PATH after installing etcd-server"; false; }

# --- apiextensions-apiserver: cached? -------------------------------------------------------
mkdir -p "$CACHE_DIR"
cached="$(newest_cached)"
if [[ -n "$cached" && -x "$cached" && "${WASMPLUG_APISERVER_REBUILD:-0}" != 1 ]]; then
    log "using cached $cached"
    echo "$cached"
    exit 0
fi

# --- private apt configuration --------------------------------------------------------------
step="prepare a private apt configuration"
work="$(mktemp -d "$CACHE_DIR/build.XXXXXX")"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/root" "$work/gocache"
# shellcheck source=sid-apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/sid-apt.sh"
sid_apt_setup "$work"

step="apt-get update (Debian sid package lists)"
log "fetching Debian sid package lists"
apt-get "${APT_OPTS[@]}" update -qq --error-on=any >&2

step="look up the version of golang-k8s-apiextensions-apiserver-dev in sid"
version="$(apt-cache "${APT_OPTS[@]}" show --no-all-versions golang-k8s-apiextensions-apiserver-dev \
    | sed -n 's/^Version: //p' | head -n 1)"
[[ -n "$version" ]] || { log "sid has no golang-k8s-apiextensions-apiserver-dev"; false; }
target="$CACHE_DIR/apiextensions-apiserver-${version//[^A-Za-z0-9.+-]/_}"
log "sid has golang-k8s-apiextensions-apiserver-dev $version"
if [[ -x "$target" ]]; then
    log "using cached $target"
    echo "$target"
    exit 0
fi

step="resolve the dependency closure of ${PACKAGES[*]} in sid"
if ! uris="$(apt-get "${APT_OPTS[@]}" install --print-uris -qq -y "${PACKAGES[@]}" 2>"$work/resolve.log")"; then
    log "apt could not resolve the closure (sid may be mid-transition):"
    sed 's/^/    /' "$work/resolve.log" >&2
    false
fi
count="$(grep -c '^'"'"'http' <<<"$uris" || true)"
log "closure: $count packages"

step="download the closure (apt-get install --download-only)"
log "downloading $count packages from sid (a few hundred MB)"
apt-get "${APT_OPTS[@]}" install --download-only -qq -y "${PACKAGES[@]}" >&2

step="unpack the downloaded packages (dpkg-deb -x)"
log "unpacking into a private root"
for deb in "$work"/cache/archives/*.deb; do
    dpkg-deb -x "$deb" "$work/root"
done
rm -rf "$work/cache/archives"

step="find the Go toolchain in the unpacked packages"
goroot="$(ls -1d "$work"/root/usr/lib/go-1.* 2>/dev/null | sort -V | tail -n 1 || true)"
[[ -n "$goroot" && -x "$goroot/bin/go" ]] || { log "no usr/lib/go-1.*/bin/go in the unpacked packages"; false; }
log "Go toolchain: $("$goroot/bin/go" version 2>/dev/null || echo "${goroot##*/}")"

step="go build k8s.io/apiextensions-apiserver"
log "building apiextensions-apiserver (takes minutes)"
(
    cd "$work"
    env GOROOT="$goroot" GOPATH="$work/root/usr/share/gocode" GO111MODULE=off GOTOOLCHAIN=local \
        CGO_ENABLED=0 GOFLAGS= GOCACHE="$work/gocache" \
        "$goroot/bin/go" build -trimpath -ldflags='-s -w' -o "$work/apiextensions-apiserver" \
        k8s.io/apiextensions-apiserver
) >&2

step="check and cache the binary"
"$work/apiextensions-apiserver" --help >/dev/null 2>&1 || { log "the built binary does not run"; false; }
mv "$work/apiextensions-apiserver" "$target.tmp"
mv "$target.tmp" "$target"
log "cached $target"
# The unpacked packages are gigabytes of small files: remove them in the background, so that
# callers reading the path below do not wait for the deletion.
trap - EXIT
(rm -rf "$work" >/dev/null 2>&1 </dev/null &)
echo "$target"
