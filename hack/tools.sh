#!/usr/bin/env bash
# Builds a development tool pinned in hack/tools/go.mod (its `tool` lines)
# and prints the binary's path on the last line of stdout:
#
#   hack/tools.sh controller-gen   # sigs.k8s.io/controller-tools (hack/generate.sh)
#   hack/tools.sh staticcheck      # honnef.co/go/tools (make lint)
#
# Built with GOWORK=off against the committed go.sum (`go install
# pkg@version` may be refused by the module proxy here) and cached under
# ${PLAYPULSE_CACHE:-$HOME/.cache/playpulse}/tools; the binary's name carries
# a fingerprint of hack/tools/go.{mod,sum}, so changing a pin builds anew.
# The first build of each takes about a minute; later runs reuse it.
set -euo pipefail

log() { printf 'tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case ${1:-} in
controller-gen) pkg=sigs.k8s.io/controller-tools/cmd/controller-gen ;;
staticcheck) pkg=honnef.co/go/tools/cmd/staticcheck ;;
*) die "usage: $0 controller-gen|staticcheck" ;;
esac
name=$1

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools_dir=$repo_root/hack/tools
cache_root=${PLAYPULSE_CACHE:-${HOME:?HOME or PLAYPULSE_CACHE must be set}/.cache/playpulse}
command -v go >/dev/null 2>&1 || die "go is not on PATH"

fp=$(cat "$tools_dir/go.mod" "$tools_dir/go.sum" | sha256sum | cut -c1-16)
bin=$cache_root/tools/$name-$fp
if [[ ! -x $bin ]]; then
	mkdir -p "$cache_root/tools"
	log "building $name from hack/tools (first run only)"
	tmp_bin=$(mktemp "$cache_root/tools/.$name.XXXXXX")
	(
		cd "$tools_dir"
		GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
			go build -trimpath -o "$tmp_bin" "$pkg"
	)
	mv -f "$tmp_bin" "$bin"
fi
echo "$bin"
