#!/usr/bin/env bash
# pod-targets.sh KUBECTL FILE: every 2 s, writes the pods annotated
# prometheus.io/scrape=true that are Running with an address as Prometheus
# file_sd targets to FILE (labels namespace, pod and the annotated path).
# The test bed's Prometheus (hack/cluster.sh metrics_up) scrapes through it
# because Debian builds Prometheus without Kubernetes service discovery.
# KUBECONFIG comes from the environment.
set -uo pipefail
kubectl=$1 out=$2
q='{range .items[?(@.metadata.annotations.prometheus\.io/scrape=="true")]}'
q+='{.status.phase} {.metadata.namespace} {.metadata.name} {.status.podIP} '
q+='{.metadata.annotations.prometheus\.io/port} {.metadata.annotations.prometheus\.io/path}{"\n"}{end}'
# A TERM (hack/cluster.sh down) ends the wait at once, and the sleep too.
trap 'kill $! 2>/dev/null; exit 0' TERM
while :; do
  if pods=$("$kubectl" get pods -A -o jsonpath="$q" 2>/dev/null); then
    awk 'BEGIN { printf "[" }
      $1 == "Running" && $4 != "" && $5 ~ /^[0-9]+$/ {
        path = ($6 == "") ? "/metrics" : $6
        printf "%s{\"targets\":[\"%s:%s\"],\"labels\":{\"namespace\":\"%s\",\"pod\":\"%s\",\"__metrics_path__\":\"%s\"}}", sep, $4, $5, $2, $3, path
        sep = ","
      }
      END { print "]" }' <<<"$pods" >"$out.tmp" && mv -f "$out.tmp" "$out"
  fi
  sleep 2 &
  wait $!
done
