#!/usr/bin/env bash
# Regenerates what controller-gen derives from the controller's Go markers:
#
#   services/controller/api/v1alpha1/zz_generated.deepcopy.go   (object)
#   services/controller/config/crd/bases/*.yaml                 (crd)
#   services/controller/config/rbac/role.yaml                   (rbac)
#
#   hack/generate.sh           write them in place (what `make generate` runs)
#   hack/generate.sh --check   generate into a temporary directory and fail,
#                              showing the diff, when the committed files are
#                              stale (tests/controller runs this)
#
# controller-gen comes from sigs.k8s.io/controller-tools, pinned in
# hack/tools/go.mod, built there with GOWORK=off against the committed go.sum
# (`go install pkg@version` may be refused by the module proxy here) and
# cached under ${PLAYPULSE_CACHE:-$HOME/.cache/playpulse}/tools. The first
# build takes about a minute; later runs reuse the binary.
set -euo pipefail

log() { printf 'generate: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

check=0
case "${1:-}" in
"") ;;
--check) check=1 ;;
*) die "usage: $0 [--check]" ;;
esac

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools_dir=$repo_root/hack/tools
module=$repo_root/services/controller
cache_root=${PLAYPULSE_CACHE:-${HOME:?HOME or PLAYPULSE_CACHE must be set}/.cache/playpulse}

command -v go >/dev/null 2>&1 || die "go is not on PATH"

# The binary's name carries a fingerprint of the pinned versions, so a change
# to hack/tools/go.{mod,sum} builds a new one.
fp=$(cat "$tools_dir/go.mod" "$tools_dir/go.sum" | sha256sum | cut -c1-16)
gen=$cache_root/tools/controller-gen-$fp
if [[ ! -x $gen ]]; then
	mkdir -p "$cache_root/tools"
	log "building controller-gen from hack/tools (first run only)"
	tmp_bin=$(mktemp "$cache_root/tools/.controller-gen.XXXXXX")
	(
		cd "$tools_dir"
		GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
			go build -trimpath -o "$tmp_bin" sigs.k8s.io/controller-tools/cmd/controller-gen
	)
	mv -f "$tmp_bin" "$gen"
fi

# crd:allowDangerousTypes lets the simulator's probabilities be JSON numbers
# (float64): `zipfAlpha: 0.9`, not `zipfAlpha: "0.9"`.
run_gen() { # $1 = crd dir, $2 = rbac dir, $3 = object dir (empty: in place)
	local object_out=()
	if [[ -n $3 ]]; then
		object_out=("output:object:dir=$3")
	fi
	(
		cd "$module"
		"$gen" \
			object paths=./api/... "${object_out[@]}"
		"$gen" \
			crd:allowDangerousTypes=true paths=./api/... output:crd:dir="$1"
		"$gen" \
			rbac:roleName=manager-role paths=./internal/... output:rbac:dir="$2"
	)
}

if [[ $check == 0 ]]; then
	run_gen "$module/config/crd/bases" "$module/config/rbac" ""
	log "wrote api/v1alpha1/zz_generated.deepcopy.go, config/crd/bases, config/rbac in services/controller"
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/crd" "$tmp/rbac" "$tmp/object"
run_gen "$tmp/crd" "$tmp/rbac" "$tmp/object"
stale=0
compare() { # $1 = generated, $2 = committed
	if ! diff -u "$2" "$1" >&2; then
		stale=1
	fi
}
compare "$tmp/object/zz_generated.deepcopy.go" "$module/api/v1alpha1/zz_generated.deepcopy.go"
compare "$tmp/rbac/role.yaml" "$module/config/rbac/role.yaml"
for f in "$tmp"/crd/*.yaml; do
	compare "$f" "$module/config/crd/bases/$(basename "$f")"
done
for f in "$module"/config/crd/bases/*.yaml; do
	[[ -e $tmp/crd/$(basename "$f") ]] || { log "$f is no longer generated"; stale=1; }
done
if [[ $stale == 1 ]]; then
	die "generated files are stale: run \`make generate\` and commit the result"
fi
log "generated files are up to date"
