#!/usr/bin/env bash
# Creates the Playpulse dev cluster: a kind cluster "playpulse" wired to a
# local image registry (localhost:5001, which Tilt finds by itself),
# cloud-provider-kind for LoadBalancer Services and Ingress (class
# "cloud-provider-kind"; ingress-nginx is retired), and the Strimzi operator.
# Then `tilt up` builds and deploys everything else. Safe to run again.
#
# Needs Docker and Go; kind (v0.33.0) is built from its Go module when it is
# not on PATH, helm by hack/helm.sh, kubectl is taken from PATH or from the
# envtest cache (hack/envtest.sh).
#
# Environment:
#   PLAYPULSE_KIND_CLUSTER  cluster name (default: playpulse)
#   PLAYPULSE_REGISTRY_PORT host port of the registry (default: 5001)
set -euo pipefail

KIND_VERSION=v0.33.0
# The node image built for kind v0.33.0 (kind's release notes: use the digest).
KIND_NODE_IMAGE=kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5
REGISTRY_IMAGE=registry:3.0.0
CLOUD_PROVIDER_KIND_IMAGE=registry.k8s.io/cloud-provider-kind/cloud-controller-manager:v0.12.0

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cluster=${PLAYPULSE_KIND_CLUSTER:-playpulse}
reg_name='kind-registry'
reg_port=${PLAYPULSE_REGISTRY_PORT:-5001}
cache_root=${PLAYPULSE_CACHE:-$HOME/.cache/playpulse}

log() { printf 'kind-up: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker is not on PATH: install Docker (or Podman with the docker CLI)"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine: is it running?"

# kind: from PATH, else built once from its Go module at KIND_VERSION.
kind=$(command -v kind || true)
if [[ -z $kind ]]; then
	kind=$cache_root/bin/kind-$KIND_VERSION
	if [[ ! -x $kind ]]; then
		log "building kind $KIND_VERSION from sigs.k8s.io/kind"
		mkdir -p "$cache_root/bin"
		GOWORK=off GOBIN="$cache_root/bin/.kind-build" go install "sigs.k8s.io/kind@$KIND_VERSION"
		mv "$cache_root/bin/.kind-build/kind" "$kind"
	fi
fi
kubectl=$(command -v kubectl || true)
if [[ -z $kubectl ]]; then
	kubectl="$("$repo_root/hack/envtest.sh" | tail -1)/kubectl"
fi

# 1. The registry, reachable as localhost:$reg_port from the host and as
#    $reg_name:5000 from the nodes.
if [[ "$(docker inspect -f '{{.State.Running}}' "$reg_name" 2>/dev/null || true)" != true ]]; then
	log "starting registry $REGISTRY_IMAGE on 127.0.0.1:$reg_port"
	docker rm -f "$reg_name" >/dev/null 2>&1 || true
	docker run -d --restart=always -p "127.0.0.1:${reg_port}:5000" --network bridge --name "$reg_name" "$REGISTRY_IMAGE" >/dev/null
fi

# 2. The cluster.
if ! "$kind" get clusters 2>/dev/null | grep -qx "$cluster"; then
	log "creating kind cluster $cluster ($KIND_NODE_IMAGE)"
	"$kind" create cluster --name "$cluster" --image "$KIND_NODE_IMAGE" \
		--config "$repo_root/k8s/kind-config.yaml" --wait 3m
fi
ctx=kind-$cluster

# 3. Containerd on every node pulls localhost:$reg_port/* from the registry
#    (kind-config.yaml points containerd at /etc/containerd/certs.d).
for node in $("$kind" get nodes --name "$cluster"); do
	docker exec "$node" mkdir -p "/etc/containerd/certs.d/localhost:${reg_port}"
	printf '[host."http://%s:5000"]\n' "$reg_name" |
		docker exec -i "$node" cp /dev/stdin "/etc/containerd/certs.d/localhost:${reg_port}/hosts.toml"
done
if [[ "$(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "$reg_name")" == null ]]; then
	docker network connect kind "$reg_name"
fi
# Tell Tilt (and anyone) where the registry is: KEP-1755.
"$kubectl" --context "$ctx" apply -f - <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: "localhost:${reg_port}"
    help: "https://kind.sigs.k8s.io/docs/user/local-registry/"
YAML

# 4. cloud-provider-kind: LoadBalancer Services and the Ingress class
#    "cloud-provider-kind", as a container next to the cluster.
if [[ "$(docker inspect -f '{{.State.Running}}' cloud-provider-kind 2>/dev/null || true)" != true ]]; then
	log "starting cloud-provider-kind ($CLOUD_PROVIDER_KIND_IMAGE)"
	docker rm -f cloud-provider-kind >/dev/null 2>&1 || true
	docker run -d --restart=always --name cloud-provider-kind --network kind \
		-v /var/run/docker.sock:/var/run/docker.sock \
		"$CLOUD_PROVIDER_KIND_IMAGE" >/dev/null
fi

# 5. The namespace and Strimzi.
"$kubectl" --context "$ctx" apply -f "$repo_root/k8s/namespace.yaml"
KUBECONFIG=${KUBECONFIG:-$HOME/.kube/config} HELM_KUBECONTEXT=$ctx "$repo_root/hack/strimzi.sh"

log "ready: context $ctx, registry localhost:$reg_port. Next: tilt up"
