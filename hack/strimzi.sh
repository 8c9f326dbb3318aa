#!/usr/bin/env bash
# Installs (or upgrades to) the Strimzi cluster operator from its Helm chart
# at a pinned version, into the namespace "strimzi", watching every
# namespace, and waits until it runs. Safe to run again. Used by
# hack/kind-up.sh and the Tiltfile; on your own cluster run it with
# KUBECONFIG set, or see docs/kubernetes.md for the plain helm command.
#
# Environment:
#   STRIMZI_NAMESPACE  where the operator runs (default: strimzi)
#   HELM               helm binary (default: hack/helm.sh, built from source)
set -euo pipefail

STRIMZI_VERSION=1.2.0
STRIMZI_CHART=oci://quay.io/strimzi-helm/strimzi-kafka-operator

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
helm=${HELM:-$repo_root/hack/helm.sh}
ns=${STRIMZI_NAMESPACE:-strimzi}

log() { printf 'strimzi: %s\n' "$*" >&2; }

log "installing strimzi-kafka-operator $STRIMZI_VERSION into namespace $ns (watching all namespaces)"
"$helm" upgrade --install strimzi-cluster-operator "$STRIMZI_CHART" \
	--version "$STRIMZI_VERSION" \
	--namespace "$ns" --create-namespace \
	--set watchAnyNamespace=true \
	--wait --timeout 10m
log "ready"
