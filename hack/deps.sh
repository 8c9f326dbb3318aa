#!/usr/bin/env bash
# Installs what `make test` needs and is missing: Debian's chromium, kcat,
# Java, Maven, Node.js, npm and Prometheus (as root), the Kafka jars (Maven Central, cached outside the repo) and the
# Go modules. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm) # the dashboard bundle
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg) # the real-player tests' HLS stream (tests/playertest)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus) # 2.42 on bookworm: promtool test rules, and the live QoE alert test's Prometheus
command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager) # 0.25 on bookworm: the receiver of the fan-out's alert webhook in tests/controller
if ((${#need_apt[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing ${need_apt[*]}; run as root or install them: apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
  echo "deps: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi

hack/kafka.sh fetch >/dev/null
echo "deps: ok (chromium, kcat, java, maven, npm, prometheus, alertmanager, Kafka jars)" >&2
