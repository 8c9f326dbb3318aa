#!/usr/bin/env bash
# Regenerates every generated file of the repository (`make generate`), or
# with --check fails when one is stale (tests/generated runs that):
#
#   controller-gen  from the controller's Go markers:
#                     services/controller/api/v1alpha1/zz_generated.deepcopy.go
#                     services/controller/config/crd/bases/*.yaml  (the CRD)
#                     services/controller/config/rbac/role.yaml    (RBAC)
#   chart           their copies in the chart: charts/playpulse/crds/*.yaml
#                   and charts/playpulse/files/controller-role.yaml
#   docs            from the config structs and the chart (tools/cmd/docgen):
#                   README.md's configuration tables, the values table in
#                   charts/playpulse/README.md, and the generated parts of
#                   charts/playpulse/values.schema.json
#   dashboard       the fan-out's dashboard bundle from web/ui (npm ci from
#                   the lock file, esbuild: services/fanout/internal/web/ui/build.sh)
#
#   hack/generate.sh [--check] [STEP...]   every step in order, or the named ones
#
# --check writes nothing, prints a diff or the stale file, and exits 1 with
# the command to run. It leaves the dashboard out (it needs npm and a
# minute): tests/e2e TestDashboardBundleFresh builds it afresh and compares.
#
# controller-gen comes from sigs.k8s.io/controller-tools, pinned in
# hack/tools/go.mod, built there with GOWORK=off against the committed go.sum
# (`go install pkg@version` may be refused by the module proxy here) and
# cached under ${PLAYPULSE_CACHE:-$HOME/.cache/playpulse}/tools. The first
# build takes about a minute; later runs reuse the binary. helm (for docs)
# comes from hack/helm.sh the same way.
set -euo pipefail

log() { printf 'generate: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

check=0
steps=()
for a in "$@"; do
	case $a in
	--check) check=1 ;;
	controller-gen | chart | docs | dashboard) steps+=("$a") ;;
	*) die "usage: $0 [--check] [controller-gen|chart|docs|dashboard]..." ;;
	esac
done
((${#steps[@]})) || steps=(controller-gen chart docs dashboard)

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
module=$repo_root/services/controller
chart=$repo_root/charts/playpulse
cd "$repo_root"
command -v go >/dev/null 2>&1 || die "go is not on PATH"

# hack/tools.sh builds the pinned generator once and prints its path.
controller_gen() {
	local gen
	gen=$(hack/tools.sh controller-gen)
	# crd:allowDangerousTypes lets the simulator's probabilities be JSON
	# numbers (float64): `zipfAlpha: 0.9`, not `zipfAlpha: "0.9"`.
	( # $1 = crd dir, $2 = rbac dir, $3 = object dir (empty: in place)
		cd "$module"
		local object_out=()
		[[ -z $3 ]] || object_out=("output:object:dir=$3")
		"$gen" object paths=./api/... "${object_out[@]}"
		"$gen" crd:allowDangerousTypes=true paths=./api/... output:crd:dir="$1"
		"$gen" rbac:roleName=manager-role paths=./internal/... output:rbac:dir="$2"
	)
}

stale=0
compare() { # $1 = generated, $2 = committed
	if ! diff -u "$2" "$1" >&2; then
		stale=1
	fi
}
# same_dir $1 = generated dir, $2 = committed dir: the same *.yaml files.
same_dir() {
	local f
	for f in "$1"/*.yaml; do
		compare "$f" "$2/$(basename "$f")"
	done
	for f in "$2"/*.yaml; do
		[[ -e $1/$(basename "$f") ]] || { log "$f is no longer generated"; stale=1; }
	done
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for step in "${steps[@]}"; do
	case $step:$check in
	controller-gen:0)
		controller_gen "$module/config/crd/bases" "$module/config/rbac" ""
		log "wrote the deepcopy code, the CRD and the RBAC rules in services/controller"
		;;
	controller-gen:1)
		mkdir -p "$tmp/crd" "$tmp/rbac" "$tmp/object"
		controller_gen "$tmp/crd" "$tmp/rbac" "$tmp/object"
		compare "$tmp/object/zz_generated.deepcopy.go" "$module/api/v1alpha1/zz_generated.deepcopy.go"
		compare "$tmp/rbac/role.yaml" "$module/config/rbac/role.yaml"
		same_dir "$tmp/crd" "$module/config/crd/bases"
		;;
	chart:0)
		rm -f "$chart"/crds/*.yaml
		cp "$module"/config/crd/bases/*.yaml "$chart/crds/"
		cp "$module/config/rbac/role.yaml" "$chart/files/controller-role.yaml"
		log "copied the CRD and the RBAC rules into charts/playpulse"
		;;
	chart:1)
		same_dir "$module/config/crd/bases" "$chart/crds"
		compare "$module/config/rbac/role.yaml" "$chart/files/controller-role.yaml"
		;;
	docs:0) go run ./tools/cmd/docgen ;;
	docs:1) go run ./tools/cmd/docgen -check || stale=1 ;;
	dashboard:0) services/fanout/internal/web/ui/build.sh ;;
	dashboard:1) log "dashboard: not rebuilt by --check (tests/e2e TestDashboardBundleFresh compares it with a fresh build)" ;;
	esac
done

if [[ $stale == 1 ]]; then
	die "generated files are stale: run \`make generate\` and commit the result"
fi
((check == 0)) || log "generated files are up to date"
