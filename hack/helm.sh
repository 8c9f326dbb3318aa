#!/usr/bin/env bash
# Builds the helm CLI from the Go module helm.sh/helm/v3 at a pinned version
# and caches it outside the repo (the release downloads are not reachable
# here; the Go module proxy is). Then either prints the binary's path or runs
# it:
#
#   hack/helm.sh --path          # last line of stdout: /path/to/helm
#   hack/helm.sh lint --strict charts/playpulse
#
# The first run compiles for about 2 minutes on 2 cores; later runs find the
# cached binary at once. Progress goes to stderr.
#
# Environment:
#   PLAYPULSE_CACHE  cache root (default: $HOME/.cache/playpulse)
#   HELM_REBUILD=1   rebuild even when the cache is complete
#
# The helper module hack/helm is not part of go.work; it builds with
# GOWORK=off against its committed go.sum (-mod=readonly). Never `go get` in
# it without checking what the k8s.io versions become.
set -euo pipefail

HELM_VERSION=v3.22.0

log() { printf 'helm.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod_dir=$repo_root/hack/helm
cache_root=${PLAYPULSE_CACHE:-${HOME:?HOME or PLAYPULSE_CACHE must be set}/.cache/playpulse}
base=$cache_root/helm
dir=$base/$HELM_VERSION
bin=$dir/helm
marker=$dir/.complete

command -v go >/dev/null 2>&1 || die "go is not on PATH (Go 1.26 is needed to build helm)"

# Helm's own Makefile stamps the version and the Kubernetes version that
# `helm template` and `helm lint` assume without a cluster (major+1 of
# client-go's v0.x); do the same, from the client-go in the committed go.mod.
client_go=$(awk '$1 == "k8s.io/client-go" { print $2 }' "$mod_dir/go.mod")
[[ $client_go =~ ^v0\.([0-9]+)\. ]] || die "cannot find k8s.io/client-go in $mod_dir/go.mod"
kube_minor=${BASH_REMATCH[1]}
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
	ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done

want=$( (echo "$HELM_VERSION $ldflags"; cat "$mod_dir/go.mod" "$mod_dir/go.sum") | sha256sum | cut -d' ' -f1)

complete() {
	[[ -x $bin && -f $marker && "$(cat "$marker")" == "$want" ]]
}

build() {
	mkdir -p "$base"
	exec 9>"$base/.lock"
	if command -v flock >/dev/null 2>&1; then
		log "waiting for lock $base/.lock"
		flock 9
	fi
	if [[ ${HELM_REBUILD:-} != 1 ]] && complete; then
		return
	fi
	local tmp start=$SECONDS
	tmp=$(mktemp -d "$base/.build.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT
	log "building helm $HELM_VERSION from helm.sh/helm/v3 (about 2 minutes the first time)"
	(
		cd "$mod_dir"
		GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
			go build -trimpath -ldflags="$ldflags" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm
	)
	"$tmp/helm" version --short >&2 || die "built helm does not run"
	mkdir -p "$dir"
	rm -f "$marker"
	mv -f "$tmp/helm" "$bin"
	echo "$want" >"$marker"
	log "built in $((SECONDS - start))s: $bin"
}

if [[ ${HELM_REBUILD:-} == 1 ]] || ! complete; then
	build
fi

if [[ ${1:-} == --path ]]; then
	echo "$bin"
	exit 0
fi
exec "$bin" "$@"
