#!/usr/bin/env bash
# hack/kafka.sh - a real single-node Apache Kafka (KRaft) broker for Playpulse
# integration tests, run from Maven Central jars (no Docker, no tarball).
#
#   hack/kafka.sh fetch      resolve the jars into the cache (outside the repo)
#   hack/kafka.sh start ...  run a broker in the foreground; prints "READY HOST:PORT"
#   hack/kafka.sh cluster .. a secured three-node cluster (TLS, SCRAM, mTLS)
#
# See `hack/kafka.sh help`.
set -euo pipefail

readonly KAFKA_VERSION=4.3.1
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly POM=$SCRIPT_DIR/kafka/pom.xml
readonly LOG4J_CONFIG=$SCRIPT_DIR/kafka/log4j2.properties
readonly CACHE_DIR=${PLAYPULSE_CACHE:-$HOME/.cache/playpulse}/kafka/$KAFKA_VERSION
readonly LIBS=$CACHE_DIR/libs
readonly MARKER=$CACHE_DIR/.complete
readonly READY_TIMEOUT=${PLAYPULSE_KAFKA_READY_TIMEOUT:-180}
readonly STOP_TIMEOUT=15
readonly ENV_FILE_NAME=playpulse-broker.env
# shellcheck source=hack/kafka/cluster.sh
source "$SCRIPT_DIR/kafka/cluster.sh"

usage() {
  cat <<EOF
Usage: hack/kafka.sh COMMAND [OPTIONS]

Commands:
  fetch    Resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its runtime
           dependencies from Maven Central into
             \${PLAYPULSE_CACHE:-\$HOME/.cache/playpulse}/kafka/$KAFKA_VERSION/libs
           (currently $LIBS).
           Idempotent: does nothing when the cache is already complete for the
           current hack/kafka/pom.xml. Prints the libs directory.

  start [--host ADDR] [--port N] [--controller-port N] [--data DIR]
           Run a single-node KRaft broker+controller in the FOREGROUND.
           Prints exactly one line "READY HOST:PORT" on stdout once the
           broker answers, then keeps running until SIGINT/SIGTERM, which stop
           the JVM cleanly (SIGKILL after ${STOP_TIMEOUT}s) and exit 0.
           --host ADDR          IPv4 address of this machine the client
                                (PLAINTEXT) listener binds and advertises;
                                default 127.0.0.1. The test-bed cluster's pods
                                reach the broker on its node address
                                (hack/cluster.sh). 0.0.0.0 is refused: the
                                broker never listens on the machine's network.
                                The controller listener stays on 127.0.0.1.
           --port N             client (PLAINTEXT) port; 0 or absent: a free port
           --controller-port N  KRaft controller port; 0 or absent: a free port
           --data DIR           data directory. Absent: a fresh temporary dir,
                                removed on exit. Given: kept on exit; if already
                                formatted it is reused with the same cluster id
                                and (unless overridden) the same ports, which are
                                stored in DIR/$ENV_FILE_NAME.
           Broker log: DIR/broker.log (also streamed to stderr, WARN and up).
           Exits non-zero if the jars are missing, the JVM dies early, or the
           broker is not ready within ${READY_TIMEOUT}s (PLAYPULSE_KAFKA_READY_TIMEOUT).

$(cluster_usage)

  help, -h, --help
           This text.

Environment:
  PLAYPULSE_CACHE               cache root (default \$HOME/.cache/playpulse)
  JAVA_HOME                     JVM to use (default: Java 17, else java on PATH)
  PLAYPULSE_KAFKA_JAVA_OPTS     extra JVM options, appended (word-split)
  PLAYPULSE_KAFKA_READY_TIMEOUT seconds to wait for READY (default 180)
EOF
}

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() {
  local code=$1
  shift
  log "$*"
  exit "$code"
}

pom_sum() { sha256sum "$POM" | cut -d' ' -f1; }

cache_complete() {
  [[ -f $MARKER && -d $LIBS ]] || return 1
  [[ "$(cat "$MARKER")" == "$KAFKA_VERSION $(pom_sum)" ]]
}

cmd_fetch() {
  [[ $# -eq 0 ]] || die 2 "fetch takes no arguments"
  if cache_complete; then
    printf '%s\n' "$LIBS"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die 3 "mvn not found on PATH (apt-get install maven)"
  mkdir -p "$CACHE_DIR"
  # Serialize concurrent fetches (e.g. parallel test packages).
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE_DIR/.lock"
    flock 9
    if cache_complete; then
      printf '%s\n' "$LIBS"
      return 0
    fi
  fi
  local tmp
  tmp=$(mktemp -d "$CACHE_DIR/libs.tmp.XXXXXX")
  log "resolving kafka_2.13:$KAFKA_VERSION from Maven Central into $LIBS"
  if ! mvn -q -B -Dstyle.color=never -f "$POM" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
    rm -rf "$tmp"
    die 1 "mvn dependency:copy-dependencies failed"
  fi
  [[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || {
    rm -rf "$tmp"
    die 1 "kafka_2.13-$KAFKA_VERSION.jar missing after resolution"
  }
  rm -f "$MARKER"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  printf '%s %s\n' "$KAFKA_VERSION" "$(pom_sum)" >"$MARKER.tmp"
  mv "$MARKER.tmp" "$MARKER"
  printf '%s\n' "$LIBS"
}

find_java() {
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    printf '%s\n' "$JAVA_HOME/bin/java"
  elif [[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]]; then
    printf '%s\n' /usr/lib/jvm/java-17-openjdk-amd64/bin/java
  elif command -v java >/dev/null 2>&1; then
    command -v java
  else
    return 1
  fi
}

# port_listening PORT [HOST]
port_listening() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# free_ports N [HOST]: print N distinct TCP ports currently free on HOST
# (default 127.0.0.1) and on 127.0.0.1, where the controller listens, one a
# line. They are taken from 20000-32767, below
# the kernel's ephemeral range (32768-60999 here): a port the kernel handed
# out for bind(0) was given to another test's listener in the seconds before
# the JVM bound it ("Address already in use"); the kernel never hands these
# out. The test bed's fixed ports are skipped.
readonly BED_PORTS="23790 23800 23810 26443 26444 26445 26446 26666 29090" # etcd, adapter, KEDA, Prometheus (hack/cluster.sh)
free_ports() {
  local n=$1 host=${2:-127.0.0.1}
  if command -v python3 >/dev/null 2>&1 && python3 - "$n" "$BED_PORTS" "$host" 127.0.0.1 <<'PY' 2>/dev/null; then
import random, socket, sys
fixed = {int(p) for p in sys.argv[2].split()}
held, ports = [], []
while len(ports) < int(sys.argv[1]):
    p = random.randint(20000, 32767)
    if p in fixed or p in ports:
        continue
    socks = []
    try:
        for h in set(sys.argv[3:]):
            s = socket.socket()
            socks.append(s)
            s.bind((h, p))
    except OSError:
        for s in socks:
            s.close()
        continue
    held += socks
    ports.append(p)
for p in ports:
    print(p)
PY
    return 0
  fi
  # Fallback: random ports in the same range that nothing is listening on.
  local seen=" $BED_PORTS " p
  while ((n > 0)); do
    p=$((20000 + RANDOM % 12768))
    [[ $seen == *" $p "* ]] && continue
    port_listening "$p" "$host" && continue
    port_listening "$p" 127.0.0.1 && continue
    seen+="$p "
    printf '%s\n' "$p"
    n=$((n - 1))
  done
}

new_cluster_id() {
  # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding (22 chars).
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    # Never the reserved zero / metadata-topic ids, never starting with '-'.
    [[ $id != AAAAAAAAAAAAAAAAAAAAA* && $id != -* ]] && break
  done
  printf '%s\n' "$id"
}

is_port() { [[ $1 =~ ^[0-9]+$ ]] && ((10#$1 <= 65535)); }

# State used by the signal handling / cleanup of cmd_start.
STOPPING=0
JPID=""
TAILPID=""
CREATED_DATA=0
DATA=""

stop_java() {
  [[ -n $JPID ]] || return 0
  if kill -0 "$JPID" 2>/dev/null; then
    kill -TERM "$JPID" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$JPID" 2>/dev/null && ((SECONDS < deadline)); do
      sleep 0.1
    done
    if kill -0 "$JPID" 2>/dev/null; then
      log "broker did not stop within ${STOP_TIMEOUT}s; killing it"
      kill -KILL "$JPID" 2>/dev/null || true
    fi
  fi
  wait "$JPID" 2>/dev/null || true
  JPID=""
}

cleanup() {
  stop_java
  if [[ -n $TAILPID ]]; then
    kill "$TAILPID" 2>/dev/null || true
    wait "$TAILPID" 2>/dev/null || true
    TAILPID=""
  fi
  if ((CREATED_DATA)) && [[ -n $DATA && -d $DATA ]]; then
    rm -rf "$DATA"
  fi
}

# The broker log is streamed to stderr by a `tail --pid` that ends by itself
# shortly after the JVM; let it drain so stderr holds the log's last lines.
# Fall back to printing the tail when no streamer is running.
finish_log() {
  local logfile=$1
  if [[ -n $TAILPID ]]; then
    local deadline=$((SECONDS + 3))
    while kill -0 "$TAILPID" 2>/dev/null && ((SECONDS < deadline)); do
      sleep 0.1
    done
    kill "$TAILPID" 2>/dev/null || true
    wait "$TAILPID" 2>/dev/null || true
    TAILPID=""
  else
    log "last lines of $logfile:"
    tail -n 40 "$logfile" >&2 2>/dev/null || true
  fi
}

cmd_start() {
  local host=127.0.0.1 port="" cport="" data=""
  while [[ $# -gt 0 ]]; do
    case $1 in
    --host) host=${2-}; shift 2 || die 2 "--host needs a value" ;;
    --host=*) host=${1#*=}; shift ;;
    --port) port=${2-}; shift 2 || die 2 "--port needs a value" ;;
    --port=*) port=${1#*=}; shift ;;
    --controller-port) cport=${2-}; shift 2 || die 2 "--controller-port needs a value" ;;
    --controller-port=*) cport=${1#*=}; shift ;;
    --data) data=${2-}; shift 2 || die 2 "--data needs a value" ;;
    --data=*) data=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die 2 "start: unknown argument '$1' (see hack/kafka.sh help)" ;;
    esac
  done
  [[ $host =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die 2 "--host: not an IPv4 address: '$host'"
  [[ $host != 0.0.0.0 ]] || die 2 "--host: 0.0.0.0 would expose the broker on every network of the machine; name one of its addresses"
  # (No `ip | grep -q` here: with pipefail, grep's early exit fails the pipe.)
  [[ $host == 127.* || $(ip -4 -o addr show 2>/dev/null) == *" $host/"* ]] ||
    die 2 "--host: $host is not an address of this machine"
  [[ -z $port ]] || is_port "$port" || die 2 "--port: not a port: '$port'"
  [[ -z $cport ]] || is_port "$cport" || die 2 "--controller-port: not a port: '$cport'"
  port=${port:-0} cport=${cport:-0}
  port=$((10#$port)) cport=$((10#$cport))

  local java
  java=$(find_java) || die 3 "java not found (install openjdk-17-jre-headless or set JAVA_HOME)"
  cache_complete || die 3 "Kafka $KAFKA_VERSION jars are not cached in $LIBS: run 'hack/kafka.sh fetch' first"

  trap 'STOPPING=1' TERM INT HUP
  trap cleanup EXIT

  if [[ -z $data ]]; then
    DATA=$(mktemp -d "${TMPDIR:-/tmp}/playpulse-kafka.XXXXXX")
    CREATED_DATA=1
  else
    mkdir -p "$data"
    DATA=$(cd "$data" && pwd)
  fi
  local env_file=$DATA/$ENV_FILE_NAME
  local log_dirs=$DATA/kafka-logs
  local props=$DATA/server.properties
  local logfile=$DATA/broker.log

  # Reuse a formatted data dir: same cluster id, same ports unless overridden.
  local formatted=0 cluster_id="" stored_port="" stored_cport="" k v
  if [[ -f $log_dirs/meta.properties ]]; then
    formatted=1
    if [[ -f $env_file ]]; then
      while IFS='=' read -r k v; do
        case $k in
        CLUSTER_ID) cluster_id=$v ;;
        PORT) stored_port=$v ;;
        CONTROLLER_PORT) stored_cport=$v ;;
        esac
      done <"$env_file"
    fi
    if [[ -z $cluster_id ]]; then
      cluster_id=$(sed -n 's/^cluster\.id=//p' "$log_dirs/meta.properties")
    fi
    [[ -n $cluster_id ]] || die 1 "$log_dirs/meta.properties has no cluster.id"
  fi
  ((port != 0)) || port=${stored_port:-0}
  ((cport != 0)) || cport=${stored_cport:-0}
  if ((port == 0 || cport == 0)); then
    local -a free
    mapfile -t free < <(free_ports 2 "$host")
    ((${#free[@]} == 2)) || die 1 "could not find free ports"
    if ((port == 0)); then
      port=${free[0]}
      [[ $port != "$cport" ]] || port=${free[1]}
    fi
    if ((cport == 0)); then
      cport=${free[1]}
      [[ $cport != "$port" ]] || cport=${free[0]}
    fi
  fi
  ((port != cport)) || die 2 "--port and --controller-port must differ"
  [[ -n $cluster_id ]] || cluster_id=$(new_cluster_id)

  {
    printf 'CLUSTER_ID=%s\n' "$cluster_id"
    printf 'PORT=%s\n' "$port"
    printf 'CONTROLLER_PORT=%s\n' "$cport"
  } >"$env_file.tmp"
  mv "$env_file.tmp" "$env_file"

  cat >"$props" <<EOF
# Generated by hack/kafka.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://$host:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://$host:$port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$log_dirs
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
log.segment.bytes=67108864
log.retention.hours=24
num.network.threads=2
num.io.threads=4
EOF

  run_broker "$java" "$props" "$logfile" "$host" "$port" "$formatted" "$cluster_id" -Xms256m -Xmx1g
}

# run_broker JAVA PROPS LOGFILE HOST PORT FORMATTED CLUSTER_ID HEAP...: format
# the data directory of PROPS unless FORMATTED is 1, run the JVM, print
# "READY HOST:PORT" once it serves, then wait for it. The caller has set the
# EXIT trap (cleanup) and the TERM/INT/HUP trap (STOPPING=1). Shared by
# `start` and by the nodes of `cluster` (hack/kafka/cluster.sh), which format
# their storage at init time (FORMATTED=1) and pass smaller heaps.
run_broker() {
  local java=$1 props=$2 logfile=$3 host=$4 port=$5 formatted=$6 cluster_id=$7
  shift 7
  local -a jvm=(
    "$@"
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent
    -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$LOG4J_CONFIG"
    "-Dkafka.logs.dir=$(dirname "$logfile")"
  )
  if [[ -n ${PLAYPULSE_KAFKA_JAVA_OPTS:-} ]]; then
    # shellcheck disable=SC2206 # word splitting intended
    jvm+=($PLAYPULSE_KAFKA_JAVA_OPTS)
  fi

  [[ ! -f $logfile ]] || mv -f "$logfile" "$logfile.1"
  : >"$logfile"

  if ((!formatted)); then
    if ! "$java" -Xshare:auto -Xms64m -Xmx256m -XX:TieredStopAtLevel=1 \
      "-Dlog4j2.configurationFile=$LOG4J_CONFIG" -cp "$LIBS/*" \
      kafka.tools.StorageTool format --config "$props" --cluster-id "$cluster_id" \
      >>"$logfile" 2>&1; then
      finish_log "$logfile"
      die 1 "formatting the storage of $props failed"
    fi
  fi

  # The JVM gets SIGTERM if this script dies (e.g. SIGKILLed test binary).
  local -a launcher=()
  if command -v setpriv >/dev/null 2>&1; then
    launcher=(setpriv --pdeathsig TERM)
  fi
  "${launcher[@]}" "$java" "${jvm[@]}" -cp "$LIBS/*" kafka.Kafka "$props" >>"$logfile" 2>&1 &
  JPID=$!
  tail -s 0.2 -n +1 -F --pid="$JPID" "$logfile" >&2 2>/dev/null &
  TAILPID=$!
  log "broker pid $JPID, properties $props, cluster $cluster_id"

  # Ready = the "Kafka Server started" line (logged after the broker is
  # unfenced and request processing is enabled) AND the port accepts.
  local deadline=$((SECONDS + READY_TIMEOUT)) rc
  while :; do
    if ((STOPPING)); then
      exit 0 # EXIT trap stops the JVM and cleans up
    fi
    if ! kill -0 "$JPID" 2>/dev/null; then
      rc=0
      wait "$JPID" || rc=$?
      JPID=""
      finish_log "$logfile"
      die 1 "broker exited early with status $rc (log: $logfile)"
    fi
    if grep -q 'Kafka Server started' "$logfile" && port_listening "$port" "$host"; then
      break
    fi
    if ((SECONDS >= deadline)); then
      stop_java
      finish_log "$logfile"
      die 1 "broker not ready within ${READY_TIMEOUT}s (log: $logfile)"
    fi
    sleep 0.1
  done
  printf 'READY %s:%s\n' "$host" "$port"

  while :; do
    if ((STOPPING)); then
      exit 0
    fi
    rc=0
    wait "$JPID" || rc=$?
    if ((STOPPING)); then
      exit 0
    fi
    if ! kill -0 "$JPID" 2>/dev/null; then
      JPID=""
      # 143: the JVM itself got SIGTERM (e.g. the process group was signalled).
      if ((rc == 143 || rc == 130 || rc == 0)); then
        exit 0
      fi
      finish_log "$logfile"
      die 1 "broker exited with status $rc (log: $logfile)"
    fi
  done
}

main() {
  local cmd=${1-help}
  [[ $# -eq 0 ]] || shift
  case $cmd in
  fetch) cmd_fetch "$@" ;;
  start) cmd_start "$@" ;;
  cluster-init) cmd_cluster_init "$@" ;;
  node) cmd_node "$@" ;;
  cluster) cmd_cluster "$@" ;;
  help | -h | --help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
  esac
}

main "$@"
