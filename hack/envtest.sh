#!/usr/bin/env bash
# Builds the controller-runtime envtest binaries (kube-apiserver, kubectl,
# etcd) from Go modules and caches them outside the repo, because the usual
# release downloads are not reachable here; only the Go module proxy is.
#
#   export KUBEBUILDER_ASSETS="$(hack/envtest.sh | tail -1)"
#
# The last line of stdout is the directory holding the three binaries; all
# progress goes to stderr. The first run compiles for several minutes (about
# 7 on 2 cores); later runs find the marker and return at once.
#
# Environment:
#   PLAYPULSE_CACHE   cache root (default: $HOME/.cache/playpulse)
#   ENVTEST_REBUILD=1 rebuild even when the cache is complete
#
# The helper modules live in hack/envtest/{kube,etcd}; they are not part of
# any go.work and are built with GOWORK=off against their committed go.sum.
# hack/envtest/kube also pins the node binaries hack/cluster.sh builds (one
# go.sum for all of Kubernetes).
set -euo pipefail

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.6.16

# stdout is reserved for the result line; everything else goes to stderr.
exec 3>&1 1>&2

log() { printf 'envtest: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod_dir=$repo_root/hack/envtest
cache_root=${PLAYPULSE_CACHE:-${HOME:?HOME or PLAYPULSE_CACHE must be set}/.cache/playpulse}
base=$cache_root/envtest
dir=$base/k8s-${KUBE_VERSION}-etcd-${ETCD_VERSION}
marker=$dir/.complete
bins=(kube-apiserver kubectl etcd)

command -v go >/dev/null 2>&1 || die "go is not on PATH"

# Version stamps, as k8s.io/kubernetes' hack/lib/version.sh sets them, so
# `kubectl version` and the apiserver's /version report KUBE_VERSION
# (controller-runtime and helm check the server version). -X of a package that
# is not linked in is ignored, so setting both is harmless.
major=${KUBE_VERSION#v}
major=${major%%.*}
minor=${KUBE_VERSION#v*.}
minor=${minor%%.*}
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	kube_ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION"
	kube_ldflags+=" -X $pkg.gitMajor=$major"
	kube_ldflags+=" -X $pkg.gitMinor=$minor"
	kube_ldflags+=" -X $pkg.gitTreeState=clean"
done

# Fingerprint of everything that decides what gets built, so editing a helper
# module or the link flags invalidates the cache even if the versions in the
# directory name stay the same.
fingerprint() {
	(
		echo "$KUBE_VERSION $ETCD_VERSION $kube_ldflags"
		cd "$mod_dir"
		cat kube/go.mod kube/go.sum etcd/go.mod etcd/go.sum etcd/main.go
	) | sha256sum | cut -d' ' -f1
}
want=$(fingerprint)

complete() {
	[[ -f $marker ]] || return 1
	[[ "$(cat "$marker")" == "$want" ]] || return 1
	local b
	for b in "${bins[@]}"; do
		[[ -x $dir/$b ]] || return 1
	done
}

if [[ ${ENVTEST_REBUILD:-} != 1 ]] && complete; then
	log "cached: $dir"
	echo "$dir" >&3
	exit 0
fi

mkdir -p "$base"

# Serialise concurrent callers (e.g. parallel make targets): the second one
# waits and then finds the cache complete.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$base/.lock"
	log "waiting for lock $base/.lock"
	flock 9
	if [[ ${ENVTEST_REBUILD:-} != 1 ]] && complete; then
		log "cached (built by another run): $dir"
		echo "$dir" >&3
		exit 0
	fi
fi

tmp=$(mktemp -d "$base/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

export GOWORK=off
# -mod=readonly: build exactly what the committed go.sum pins.
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED=0


start=$SECONDS
log "building kube-apiserver and kubectl $KUBE_VERSION (first build takes several minutes)"
(
	cd "$mod_dir/kube"
	go build -trimpath -ldflags="$kube_ldflags" -o "$tmp/" \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kubectl
)
log "kube binaries built in $((SECONDS - start))s"

t=$SECONDS
log "building etcd $ETCD_VERSION"
(
	cd "$mod_dir/etcd"
	go build -trimpath -ldflags="-s -w" -o "$tmp/etcd" .
)
log "etcd built in $((SECONDS - t))s"

# Quick sanity check before publishing.
"$tmp/kubectl" version --client >&2 || die "built kubectl does not run"
"$tmp/etcd" --version >&2 || die "built etcd does not run"
"$tmp/kube-apiserver" --version >&2 || die "built kube-apiserver does not run"

mkdir -p "$dir"
rm -f "$marker"
for b in "${bins[@]}"; do
	mv -f "$tmp/$b" "$dir/$b"
done
echo "$want" >"$marker"

log "done in $((SECONDS - start))s: $dir"
echo "$dir" >&3
