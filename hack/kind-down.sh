#!/usr/bin/env bash
# Deletes what hack/kind-up.sh created: the kind cluster, the
# cloud-provider-kind container and the local registry (with its images).
# Safe to run again.
set -euo pipefail

cluster=${PLAYPULSE_KIND_CLUSTER:-playpulse}
log() { printf 'kind-down: %s\n' "$*" >&2; }

kind=$(command -v kind || true)
if [[ -z $kind ]]; then
	built=("${PLAYPULSE_CACHE:-$HOME/.cache/playpulse}"/bin/kind-*)
	[[ -x ${built[-1]} ]] && kind=${built[-1]}
fi
if [[ -n $kind ]] && "$kind" get clusters 2>/dev/null | grep -qx "$cluster"; then
	log "deleting kind cluster $cluster"
	"$kind" delete cluster --name "$cluster"
fi
for c in cloud-provider-kind kind-registry; do
	if docker inspect "$c" >/dev/null 2>&1; then
		log "removing container $c"
		docker rm -f "$c" >/dev/null
	fi
done
log "done"
