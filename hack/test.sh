#!/usr/bin/env bash
# hack/test.sh: the test packages of `make test`, in three lanes at once.
#
# Run one at a time the packages take about 31 minutes on this 2-core
# machine with warm caches, much of it waiting (for pods, for an alert
# rule's `for:`, for a broker to move a leader, for five minutes of a page's
# heap), so three lanes share the machine well:
#
#   lane A  tests/cluster first (the node: host mounts, iptables, a bridge;
#           one at a time by nature), then collector, playertest, faults,
#           and tests/e2e without the two tests below;
#   lane B  tests/e2e's five-minute heap watch, then every other package
#           (unit tests, envtest, packaging, the Kafka helpers, generated
#           files, benchmarks' smoke runs);
#   lane C  TestIncidentsFireAlerts (tests/controller): four minutes
#           of a 600 events/s stream, Prometheus and its alert rules, mostly
#           waiting for alerts and their resolution, so it shares the
#           machine with the other two. (It once ran alone, after failing
#           its startup alert's deadline beside lane A; the cause was the
#           fan-out's startup histogram going down at each country re-rank,
#           fixed in a99ba4b, not the busy machine.)
#
# Then, alone: TestDashboardUnderLoad, which needs the whole machine to
# carry 50,000 events/s.
#
# Before the lanes, one `go build -race` of every package the tests import
# (the test files aside) compiles them once with both cores: the lanes run
# `go test -p 1`, one package at a time each, and on an empty build cache
# both would otherwise compile the same dependencies at once, each on one
# core. With a warm cache it only checks (1 to 3 s). The Go build cache is
# safe to share between the processes; each line says its lane; the exit
# status is non-zero if any part failed. TEST_LANES=1 runs everything in
# one `go test` instead.
#
# Usage: MODULES='services/playback ... tests tools' hack/test.sh GO_TEST_FLAGS...
# (make test sets MODULES and KUBEBUILDER_ASSETS)
set -uo pipefail
cd "$(dirname "$0")/.."

# Lane A, in order, then tests/e2e without the two tests below.
lane_a=(./tests/cluster ./tests/collector ./tests/playertest ./tests/faults)
# Lane B first: the page's five-minute heap watch, a light, steady load
# whose figure is the page's heap, not a rate; then every other package.
heap='^TestDashboardHeapSteady$'
# Lane C: the incidents' alerts (tests/controller).
incidents='^TestIncidentsFireAlerts$'
# Alone, after the lanes: the page and the fan-out at 50,000 events/s,
# which needs the whole machine to carry that rate.
load='^TestDashboardUnderLoad$'
# MODULES: the Makefile's module list (space-separated).
read -r -a modules <<<"${MODULES:?MODULES (the module folders) must be set; make test sets it}"

lane_b=()
for m in "${modules[@]}"; do
  while read -r dir; do
    rel=./${dir#"$PWD"/}
    skip=0
    for a in "${lane_a[@]}" ./tests/e2e; do [[ $rel == "$a" ]] && skip=1; done
    ((skip)) || lane_b+=("$rel")
  done < <(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.Dir}}{{end}}' "./$m/..." | sed '/^$/d')
done

if [[ ${TEST_LANES:-2} == 1 ]]; then
  exec go test "$@" "${lane_a[@]}" ./tests/e2e "${lane_b[@]}"
fi

lane_a_run() {
  local rc=0
  go test "$@" "${lane_a[@]}" || rc=1
  go test "$@" -skip "$heap|$load" ./tests/e2e || rc=1
  return $rc
}
lane_b_run() {
  local rc=0
  go test "$@" -run "$heap" ./tests/e2e || rc=1
  go test "$@" -skip "$incidents" "${lane_b[@]}" || rc=1
  return $rc
}

# summary prints, last, what failed: each failed test's lines, panics, the
# failed packages and what their TestMain said. CI keeps only the end of a
# long output, and three lanes' lines interleave, so without it a failure's
# reason can be thousands of lines above the last one.
summary() {
  [[ -s $status/log ]] || return 0
  local failed
  failed=$(awk '
    { l = substr($0, 2, 1) }
    /^\[.\] panic:/ { print; trace[l] = 40; next }
    trace[l] > 0 { print; trace[l]--; next }
    /^\[.\] *--- FAIL/ || /^\[.\] FAIL\t/ { print; keep[l] = 1; next }
    keep[l] && /^\[.\]  +[^ ]/ { print; next }
    { keep[l] = 0 }
    /^\[.\] tests\/[a-z]+: / && /(not available|down:|failed)/ { print }
  ' "$status/log" | head -n 300)
  [[ -n $failed ]] || return 0
  echo "---- what failed (at most 300 lines; the whole output is above) ----"
  echo "$failed"
}

# Each lane's exit status goes through a file: the pipe to sed would hide it.
status=$(mktemp -d)
trap 'rm -rf "$status"' EXIT
trap 'kill $(jobs -p) 2>/dev/null; exit 130' INT TERM
start=$SECONDS
rc=0
# The packages under test and everything they import, minus the test
# variants and the test mains, which go test builds.
mapfile -t deps < <(go list -deps -test -f '{{if and (not .Standard) (not .ForTest) (or .GoFiles .CgoFiles)}}{{.ImportPath}}{{end}}' \
  "${lane_a[@]}" ./tests/e2e "${lane_b[@]}" | grep -v -e '^$' -e '\.test$')
race=()
for f in "$@"; do [[ $f == -race ]] && race=(-race); done
go build "${race[@]}" "${deps[@]}" || rc=1
echo "test packages: $((SECONDS - start)) s to compile what they import"
# Every line also goes to $status/log, for the summary of failures at the end.
{ lane_a_run "$@" 2>&1; echo $? >"$status/A"; } | sed -u 's/^/[A] /' | tee -a "$status/log" &
{ lane_b_run "$@" 2>&1; echo $? >"$status/B"; } | sed -u 's/^/[B] /' | tee -a "$status/log" &
{ go test "$@" -run "$incidents" ./tests/controller 2>&1; echo $? >"$status/C"; } | sed -u 's/^/[C] /' | tee -a "$status/log" &
wait
for lane in A B C; do
  r=$(cat "$status/$lane" 2>/dev/null || echo 1)
  echo "lane $lane: exit $r"
  [[ $r == 0 ]] || rc=1
done
echo "test packages: $((SECONDS - start)) s in three lanes"
go test "$@" -run "$load" ./tests/e2e 2>&1 | sed -u 's/^/[L] /' | tee -a "$status/log"
[[ ${PIPESTATUS[0]} == 0 ]] || rc=1
echo "test packages: $((SECONDS - start)) s in all"
summary
exit $rc
