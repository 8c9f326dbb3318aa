#!/usr/bin/env bash
# Builds the dashboard bundle that the fan-out embeds (../dashboard/) from
# src/ with the npm packages locked in package-lock.json: `make dashboard`,
# and `make test` before it builds.
#
# npm ci runs only when node_modules does not match the lock file. Without
# npm: in CI (CI set), as root on Debian, it installs nodejs and npm with apt
# (as hack/deps.sh does for the other tools); otherwise it keeps the
# committed bundle and says so: `go build` and `make run` need no Node, and
# the test that compares the bundle with a fresh build fails loudly
# without npm.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v npm >/dev/null 2>&1; then
  if [[ -n ${CI:-} && $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "dashboard: installing nodejs and npm (apt)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends nodejs npm >&2
  else
    echo "dashboard: npm not found: keeping the committed bundle in services/fanout/internal/web/dashboard (install Node.js 18+ and npm to rebuild it)" >&2
    exit 0
  fi
fi

stamp=node_modules/.playpulse-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi
node build.mjs "$@"
