# shellcheck shell=bash
# hack/kafka/cluster.sh - the secured three-node cluster of hack/kafka.sh:
# sourced by it for `cluster-init`, `node` and `cluster` (see
# `hack/kafka.sh help`). It uses kafka.sh's functions (log, die, find_java,
# free_ports, new_cluster_id, run_broker, cleanup) and variables.
#
# Every node is a KRaft broker+controller (combined mode) on loopback (and
# optionally one more address of this machine, --host) with:
#   PLAINTEXT   plaintext, for fast tests and for counting records
#   SCRAM       SASL_SSL with SCRAM-SHA-512 (users created at format time)
#   MTLS        SSL with client authentication (mutual TLS)
#   REPLICATION plaintext on 127.0.0.1, between the brokers
#   CONTROLLER  plaintext on 127.0.0.1, the KRaft quorum
#   PROXY_<N>   plaintext, advertised at an address a test proxies (--proxy)
# and node 1 one more, EXPIRED: SSL with a broker certificate that expired
# (what a client sees when a broker's certificate was not renewed).
#
# The PKI is Strimzi's: a cluster CA signs the broker certificates, a clients
# CA the user certificates, and the files clients need are laid out under
# DIR/secrets exactly as Strimzi's Secrets mount them.

# Cluster-wide settings. Heaps are small: three nodes share 2 cores with the
# services under test (docs/operations.md, "Running against a secured
# Strimzi cluster", has the measured cost).
readonly CLUSTER_HEAP=(-Xms128m -Xmx512m)
readonly CLUSTER_NAME_DEFAULT=playpulse
readonly SCRAM_USER_DEFAULT=playpulse
readonly TLS_USER_DEFAULT=playpulse-tls
readonly CERT_DAYS=3650

cluster_usage() {
  cat <<EOF
  cluster-init --dir DIR [--nodes N] [--host ADDR] [--proxy[-scram] NAME=ADDR,...]...
           Prepare a secured KRaft cluster of N (default 3) broker+controller
           nodes in DIR: free ports, a cluster CA and a clients CA, broker
           certificates (SANs localhost, 127.0.0.1 and ADDR), the nodes'
           properties, and storage formatted with the SCRAM-SHA-512 user
           "$SCRAM_USER_DEFAULT". Replication factor min(N,3), min.insync.replicas
           min(N,2). Files for clients, laid out as Strimzi's Secrets mount:
             DIR/secrets/$CLUSTER_NAME_DEFAULT-cluster-ca-cert/  ca.crt ca.p12 ca.password
             DIR/secrets/$CLUSTER_NAME_DEFAULT-clients-ca-cert/  ca.crt
             DIR/secrets/$SCRAM_USER_DEFAULT/                   password sasl.jaas.config
             DIR/secrets/$TLS_USER_DEFAULT/               ca.crt user.crt user.key user.p12 user.password
           and DIR/pki/ the CAs' keys (tests mint more users with them).
           --host ADDR   one more IPv4 address of this machine (default
                         127.0.0.1) the client listeners bind and advertise
           --proxy NAME=ADDR,...  one more plaintext listener per node,
                         PROXY_NAME, bound to a free loopback port and
                         advertised at the node's ADDR (one per node): a
                         test's proxy listens there and forwards to the bound
                         port, so every connection of its clients goes
                         through the proxy
           --proxy-scram NAME=ADDR,...  the same as a SASL_SSL listener
                         with SCRAM-SHA-512 (the proxy forwards TLS as it is)
           Idempotent: a DIR already initialised is kept. Prints DIR/cluster.env:
             CLUSTER_DIR CLUSTER_ID NODES HOST SECRETS PKI
             PLAINTEXT SCRAM MTLS  (bootstrap lists, host:port,...)
             EXPIRED               (node 1's listener with an expired certificate)
             PROXY_<NAME>          (the bound ports the proxies forward to)
             NODE_<i>_PLAINTEXT    (each node's plaintext address)

  node --dir DIR --node I
           Run node I of an initialised cluster in the FOREGROUND, like
           start: "READY HOST:PORT" (its PLAINTEXT listener) once it serves,
           SIGINT/SIGTERM stop it. Its log is DIR/node-I/broker.log.

  cluster [--nodes N] [--host ADDR] [--data DIR] [--proxy[-scram] NAME=...]...
           cluster-init, then every node in the background; prints
           DIR/cluster.env and "READY PLAINTEXT-BOOTSTRAP" once all serve,
           and runs until SIGINT/SIGTERM, which stop every node. Without
           --data a temporary DIR is used and removed on exit.
EOF
}

# env_get FILE KEY: the value of KEY=... in FILE.
env_get() { sed -n "s/^$2=//p" "$1" | head -n 1; }

# check_host ADDR: an IPv4 address of this machine, not 0.0.0.0.
check_host() {
  local host=$1
  [[ $host =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die 2 "--host: not an IPv4 address: '$host'"
  [[ $host != 0.0.0.0 ]] || die 2 "--host: 0.0.0.0 would expose the brokers on every network of the machine; name one of its addresses"
  [[ $host == 127.* || $(ip -4 -o addr show 2>/dev/null) == *" $host/"* ]] ||
    die 2 "--host: $host is not an address of this machine"
}

# new_ca DIR NAME CN: an EC P-256 CA key and self-signed certificate.
new_ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$1/$2.key" -out "$1/$2.crt" -days "$CERT_DAYS" \
    -subj "/O=io.strimzi/CN=$3" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}

# new_cert PKI CA OUT CN SAN [START END]: a key (PKCS#8, as Strimzi's
# user.key) and a certificate signed by CA, valid from START to END
# (YYYYMMDDHHMMSSZ) when given, else for CERT_DAYS from now.
new_cert() {
  local pki=$1 ca=$2 out=$3 cn=$4 san=$5 start=${6-} end=${7-}
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$out.key" 2>/dev/null
  openssl req -new -key "$out.key" -subj "/O=io.strimzi/CN=$cn" -out "$out.csr" 2>/dev/null
  local ext=$out.ext
  {
    printf '[ext]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'
    printf 'extendedKeyUsage=serverAuth,clientAuth\n'
    [[ -z $san ]] || printf 'subjectAltName=%s\n' "$san"
  } >"$ext"
  if [[ -z $start ]]; then
    openssl x509 -req -in "$out.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" -CAcreateserial \
      -out "$out.crt" -days "$CERT_DAYS" -extfile "$ext" -extensions ext 2>/dev/null
  else
    # `openssl x509` of OpenSSL 3.0 cannot date a certificate in the past;
    # `openssl ca` can, with a throw-away database.
    local db=$pki/ca-db.$ca
    mkdir -p "$db"
    : >"$db/index.txt"
    [[ -f $db/serial ]] || openssl rand -hex 8 >"$db/serial"
    cat >"$db/ca.cnf" <<EOF
[ca]
default_ca=ca_default
[ca_default]
database=$db/index.txt
new_certs_dir=$db
serial=$db/serial
default_md=sha256
policy=policy_any
unique_subject=no
[policy_any]
organizationName=optional
commonName=supplied
EOF
    openssl ca -batch -config "$db/ca.cnf" -cert "$pki/$ca.crt" -keyfile "$pki/$ca.key" \
      -in "$out.csr" -out "$out.crt" -startdate "$start" -enddate "$end" -notext \
      -extfile "$ext" -extensions ext 2>/dev/null
  fi
  rm -f "$out.csr" "$ext"
}

# p12 KEY CRT CA OUT PASSWORD: a PKCS#12 keystore (Strimzi's user.p12, the
# brokers' keystores).
p12() {
  openssl pkcs12 -export -inkey "$1" -in "$2" -certfile "$3" -name "$(basename "${4%.p12}")" \
    -out "$4" -passout "pass:$5"
}

secret_password() { openssl rand -hex 16; }

cmd_cluster_init() {
  local dir="" nodes=3 host=127.0.0.1 scram_proxies=" " p
  local -a proxies=()
  while [[ $# -gt 0 ]]; do
    case $1 in
    --dir) dir=${2-}; shift 2 || die 2 "--dir needs a value" ;;
    --dir=*) dir=${1#*=}; shift ;;
    --nodes) nodes=${2-}; shift 2 || die 2 "--nodes needs a value" ;;
    --nodes=*) nodes=${1#*=}; shift ;;
    --host) host=${2-}; shift 2 || die 2 "--host needs a value" ;;
    --host=*) host=${1#*=}; shift ;;
    --proxy) proxies+=("${2-}"); shift 2 || die 2 "--proxy needs a value" ;;
    --proxy=*) proxies+=("${1#*=}"); shift ;;
    --proxy-scram) proxies+=("${2-}"); scram_proxies+=" ${2%%=*} "; shift 2 || die 2 "--proxy-scram needs a value" ;;
    --proxy-scram=*) proxies+=("${1#*=}"); p=${1#*=}; scram_proxies+=" ${p%%=*} "; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die 2 "cluster-init: unknown argument '$1' (see hack/kafka.sh help)" ;;
    esac
  done
  [[ -n $dir ]] || die 2 "cluster-init: --dir is required"
  [[ $nodes =~ ^[1-9]$ ]] || die 2 "--nodes: 1 to 9, got '$nodes'"
  check_host "$host"
  local name addrs
  for p in "${proxies[@]}"; do
    name=${p%%=*} addrs=${p#*=}
    [[ $p == *=* && $name =~ ^[A-Z][A-Z0-9]*$ ]] || die 2 "--proxy: want NAME=ADDR,... with NAME in capitals, got '$p'"
    local -a a
    IFS=, read -r -a a <<<"$addrs"
    ((${#a[@]} == nodes)) || die 2 "--proxy $name: ${#a[@]} addresses for $nodes nodes"
  done
  command -v openssl >/dev/null 2>&1 || die 3 "openssl not found (apt-get install openssl)"
  local java
  java=$(find_java) || die 3 "java not found (install openjdk-17-jre-headless or set JAVA_HOME)"
  command -v keytool >/dev/null 2>&1 || [[ -x $(dirname "$java")/keytool ]] || die 3 "keytool not found (it comes with the JDK)"
  local keytool
  keytool=$(command -v keytool || printf '%s' "$(dirname "$java")/keytool")
  cache_complete || die 3 "Kafka $KAFKA_VERSION jars are not cached in $LIBS: run 'hack/kafka.sh fetch' first"

  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [[ -f $dir/.initialised ]]; then
    cat "$dir/cluster.env"
    return 0
  fi
  # A half-initialised directory (an earlier init failed) starts over.
  find "$dir" -mindepth 1 -delete

  local rf=$((nodes < 3 ? nodes : 3)) isr=$((nodes < 2 ? nodes : 2))
  local cluster=$CLUSTER_NAME_DEFAULT
  local pki=$dir/pki secrets=$dir/secrets
  mkdir -p "$pki" "$secrets"

  # Ports: plaintext, scram, mtls, replication, controller per node, the
  # expired listener, and one per proxied listener and node.
  local nports=$((nodes * (5 + ${#proxies[@]}) + 1))
  local -a free
  mapfile -t free < <(free_ports "$nports" "$host")
  ((${#free[@]} == nports)) || die 1 "could not find $nports free ports"
  local next=0
  take_port() { REPLY=${free[next]}; next=$((next + 1)); }

  # PKI.
  new_ca "$pki" cluster-ca "cluster-ca v0"
  new_ca "$pki" clients-ca "clients-ca v0"
  local storepass
  storepass=$(secret_password)
  printf '%s' "$storepass" >"$pki/store.password"
  local san="DNS:localhost,IP:127.0.0.1"
  [[ $host == 127.0.0.1 ]] || san+=",IP:$host"

  local cid i
  cid=$(new_cluster_id)
  local -a plain scram mtls repl ctrl
  for ((i = 1; i <= nodes; i++)); do
    take_port; plain[i]=$REPLY
    take_port; scram[i]=$REPLY
    take_port; mtls[i]=$REPLY
    take_port; repl[i]=$REPLY
    take_port; ctrl[i]=$REPLY
  done
  take_port
  local expired=$REPLY
  local voters=""
  for ((i = 1; i <= nodes; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:${ctrl[i]}"
  done

  local scram_pw
  scram_pw=$(secret_password)

  {
    printf 'CLUSTER_DIR=%s\nCLUSTER_ID=%s\nNODES=%s\nHOST=%s\n' "$dir" "$cid" "$nodes" "$host"
    printf 'SECRETS=%s\nPKI=%s\nCLUSTER_NAME=%s\n' "$secrets" "$pki" "$cluster"
    printf 'SCRAM_USER=%s\nTLS_USER=%s\n' "$SCRAM_USER_DEFAULT" "$TLS_USER_DEFAULT"
    local l sep
    for l in PLAINTEXT SCRAM MTLS; do
      printf '%s=' "$l"
      sep=""
      for ((i = 1; i <= nodes; i++)); do
        case $l in
        PLAINTEXT) printf '%s%s:%s' "$sep" "$host" "${plain[i]}" ;;
        SCRAM) printf '%s%s:%s' "$sep" "$host" "${scram[i]}" ;;
        MTLS) printf '%s%s:%s' "$sep" "$host" "${mtls[i]}" ;;
        esac
        sep=,
      done
      printf '\n'
    done
    printf 'EXPIRED=%s:%s\n' "$host" "$expired"
    for ((i = 1; i <= nodes; i++)); do
      printf 'NODE_%s_PLAINTEXT=%s:%s\n' "$i" "$host" "${plain[i]}"
    done
  } >"$dir/cluster.env"

  # Proxied listeners: bound ports (the proxies' upstreams), advertised
  # addresses (where the proxies listen).
  local -A proxy_bound=() proxy_adv=()
  for p in "${proxies[@]}"; do
    name=${p%%=*} addrs=${p#*=}
    local -a a
    IFS=, read -r -a a <<<"$addrs"
    local bound=""
    for ((i = 1; i <= nodes; i++)); do
      take_port
      proxy_bound[$name,$i]=$REPLY
      proxy_adv[$name,$i]=${a[i - 1]}
      bound+="${bound:+,}127.0.0.1:$REPLY"
    done
    printf 'PROXY_%s=%s\n' "$name" "$bound" >>"$dir/cluster.env"
  done

  for ((i = 1; i <= nodes; i++)); do
    local nd=$dir/node-$i
    mkdir -p "$nd"
    new_cert "$pki" cluster-ca "$nd/broker" "playpulse-kafka-$i" "$san"
    p12 "$nd/broker.key" "$nd/broker.crt" "$pki/cluster-ca.crt" "$nd/broker.p12" "$storepass"
    local listeners="PLAINTEXT://$host:${plain[i]},SCRAM://$host:${scram[i]},MTLS://$host:${mtls[i]},REPLICATION://127.0.0.1:${repl[i]},CONTROLLER://127.0.0.1:${ctrl[i]}"
    local advertised="PLAINTEXT://$host:${plain[i]},SCRAM://$host:${scram[i]},MTLS://$host:${mtls[i]},REPLICATION://127.0.0.1:${repl[i]}"
    local protocols="PLAINTEXT:PLAINTEXT,SCRAM:SASL_SSL,MTLS:SSL,REPLICATION:PLAINTEXT,CONTROLLER:PLAINTEXT"
    local proxy_props=""
    for p in "${proxies[@]}"; do
      name=${p%%=*}
      listeners+=",PROXY_$name://127.0.0.1:${proxy_bound[$name,$i]}"
      advertised+=",PROXY_$name://${proxy_adv[$name,$i]}"
      if [[ $scram_proxies == *" $name "* ]]; then
        protocols+=",PROXY_$name:SASL_SSL"
        local lower=${name,,}
        proxy_props+="listener.name.proxy_$lower.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.proxy_$lower.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
"
      else
        protocols+=",PROXY_$name:PLAINTEXT"
      fi
    done
    local expired_props=""
    if ((i == 1)); then
      # A broker certificate that expired a year ago, on a listener of its own.
      new_cert "$pki" cluster-ca "$pki/expired-broker" "playpulse-kafka-1" "$san" 20240101000000Z 20250101000000Z
      p12 "$pki/expired-broker.key" "$pki/expired-broker.crt" "$pki/cluster-ca.crt" "$pki/expired-broker.p12" "$storepass"
      listeners+=",EXPIRED://$host:$expired"
      advertised+=",EXPIRED://$host:$expired"
      protocols+=",EXPIRED:SSL"
      expired_props="listener.name.expired.ssl.keystore.type=PKCS12
listener.name.expired.ssl.keystore.location=$pki/expired-broker.p12
listener.name.expired.ssl.keystore.password=$storepass"
    fi
    cat >"$nd/server.properties" <<EOF
# Generated by hack/kafka.sh cluster-init.
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=$protocols
inter.broker.listener.name=REPLICATION
controller.listener.names=CONTROLLER
log.dirs=$nd/kafka-logs
# TLS: the broker certificate, signed by the cluster CA.
ssl.keystore.type=PKCS12
ssl.keystore.location=$nd/broker.p12
ssl.keystore.password=$storepass
# SCRAM: SASL_SSL with SCRAM-SHA-512 only, as a Strimzi scram-sha-512 listener.
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.scram.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.scram.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
# MTLS: clients must show a certificate of the clients CA, as a Strimzi tls listener with tls authentication.
listener.name.mtls.ssl.client.auth=required
listener.name.mtls.ssl.truststore.type=PEM
listener.name.mtls.ssl.truststore.location=$pki/clients-ca.crt
$expired_props
$proxy_props
num.partitions=3
default.replication.factor=$rf
min.insync.replicas=$isr
auto.create.topics.enable=false
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
# A SIGKILLed node is fenced, and its partitions get new leaders, within
# about 5 s (the defaults, 9 s, would hold 20,000 events/s in the producers
# for twice as long).
broker.session.timeout.ms=5000
broker.heartbeat.interval.ms=1000
log.segment.bytes=67108864
log.retention.hours=24
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
EOF
    rm -f "$nd/broker.key" # in the keystore now
  done

  # Strimzi's Secrets, as they mount.
  local s=$secrets/$cluster-cluster-ca-cert
  mkdir -p "$s"
  cp "$pki/cluster-ca.crt" "$s/ca.crt"
  local capw
  capw=$(secret_password)
  printf '%s' "$capw" >"$s/ca.password"
  "$keytool" -importcert -noprompt -alias ca -file "$s/ca.crt" -keystore "$s/ca.p12" \
    -storetype PKCS12 -storepass "$capw" >/dev/null 2>&1 || die 1 "keytool could not write $s/ca.p12"
  mkdir -p "$secrets/$cluster-clients-ca-cert"
  cp "$pki/clients-ca.crt" "$secrets/$cluster-clients-ca-cert/ca.crt"

  s=$secrets/$SCRAM_USER_DEFAULT
  mkdir -p "$s"
  printf '%s' "$scram_pw" >"$s/password"
  printf 'org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";' \
    "$SCRAM_USER_DEFAULT" "$scram_pw" >"$s/sasl.jaas.config"

  s=$secrets/$TLS_USER_DEFAULT
  mkdir -p "$s"
  new_cert "$pki" clients-ca "$s/user" "$TLS_USER_DEFAULT" ""
  local upw
  upw=$(secret_password)
  printf '%s' "$upw" >"$s/user.password"
  p12 "$s/user.key" "$s/user.crt" "$pki/clients-ca.crt" "$s/user.p12" "$upw"
  cp "$pki/clients-ca.crt" "$s/ca.crt"
  chmod -R go-rwx "$dir"

  # Format every node's storage with the SCRAM user, in parallel (a JVM
  # each).
  local -a fmtpids=()
  for ((i = 1; i <= nodes; i++)); do
    "$java" -Xshare:auto -Xms64m -Xmx256m -XX:TieredStopAtLevel=1 \
      "-Dlog4j2.configurationFile=$LOG4J_CONFIG" -cp "$LIBS/*" \
      kafka.tools.StorageTool format --config "$dir/node-$i/server.properties" --cluster-id "$cid" \
      --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER_DEFAULT,password=$scram_pw]" \
      >"$dir/node-$i/format.log" 2>&1 &
    fmtpids+=($!)
  done
  local rc=0
  for i in "${!fmtpids[@]}"; do
    if ! wait "${fmtpids[i]}"; then
      rc=1
      log "formatting node $((i + 1)) failed:"
      tail -n 20 "$dir/node-$((i + 1))/format.log" >&2
    fi
  done
  ((rc == 0)) || die 1 "formatting the cluster's storage failed"
  : >"$dir/.initialised"
  cat "$dir/cluster.env"
}

cmd_node() {
  local dir="" node=""
  while [[ $# -gt 0 ]]; do
    case $1 in
    --dir) dir=${2-}; shift 2 || die 2 "--dir needs a value" ;;
    --dir=*) dir=${1#*=}; shift ;;
    --node) node=${2-}; shift 2 || die 2 "--node needs a value" ;;
    --node=*) node=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die 2 "node: unknown argument '$1' (see hack/kafka.sh help)" ;;
    esac
  done
  [[ -n $dir && -f $dir/.initialised ]] || die 2 "node: --dir must name a directory prepared by cluster-init"
  local env=$dir/cluster.env
  [[ $node =~ ^[0-9]+$ && -f $dir/node-$node/server.properties ]] || die 2 "node: no node '$node' in $dir"
  local java
  java=$(find_java) || die 3 "java not found (install openjdk-17-jre-headless or set JAVA_HOME)"
  cache_complete || die 3 "Kafka $KAFKA_VERSION jars are not cached in $LIBS: run 'hack/kafka.sh fetch' first"
  local addr host port
  addr=$(env_get "$env" "NODE_${node}_PLAINTEXT")
  host=${addr%:*} port=${addr##*:}
  trap 'STOPPING=1' TERM INT HUP
  trap cleanup EXIT
  run_broker "$java" "$dir/node-$node/server.properties" "$dir/node-$node/broker.log" "$host" "$port" 1 \
    "$(env_get "$env" CLUSTER_ID)" "${CLUSTER_HEAP[@]}"
}

# State of cmd_cluster's cleanup.
CLUSTER_PIDS=()
CLUSTER_DIR_CREATED=""

cluster_cleanup() {
  local p
  for p in "${CLUSTER_PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${CLUSTER_PIDS[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  CLUSTER_PIDS=()
  if [[ -n $CLUSTER_DIR_CREATED && -d $CLUSTER_DIR_CREATED ]]; then
    rm -rf "$CLUSTER_DIR_CREATED"
  fi
}

cmd_cluster() {
  local data=""
  local -a init=()
  while [[ $# -gt 0 ]]; do
    case $1 in
    --data) data=${2-}; shift 2 || die 2 "--data needs a value" ;;
    --data=*) data=${1#*=}; shift ;;
    --nodes | --host | --proxy | --proxy-scram) init+=("$1" "${2-}"); shift 2 || die 2 "$1 needs a value" ;;
    --nodes=* | --host=* | --proxy=* | --proxy-scram=*) init+=("$1"); shift ;;
    -h | --help) usage; exit 0 ;;
    *) die 2 "cluster: unknown argument '$1' (see hack/kafka.sh help)" ;;
    esac
  done
  trap 'STOPPING=1' TERM INT HUP
  trap cluster_cleanup EXIT
  if [[ -z $data ]]; then
    data=$(mktemp -d "${TMPDIR:-/tmp}/playpulse-kafka-cluster.XXXXXX")
    CLUSTER_DIR_CREATED=$data
  fi
  local env
  env=$(cmd_cluster_init --dir "$data" "${init[@]}") || exit $?
  data=$(cd "$data" && pwd)
  local nodes i
  nodes=$(env_get "$data/cluster.env" NODES)
  # The nodes get SIGTERM if this script dies, however it dies (each node
  # stops its JVM on it, as `start` does).
  local -a launcher=()
  if command -v setpriv >/dev/null 2>&1; then
    launcher=(setpriv --pdeathsig TERM)
  fi
  for ((i = 1; i <= nodes; i++)); do
    "${launcher[@]}" bash "$SCRIPT_DIR/kafka.sh" node --dir "$data" --node "$i" >"$data/node-$i/node.out" 2>"$data/node-$i/node.err" &
    CLUSTER_PIDS+=($!)
  done
  local deadline=$((SECONDS + READY_TIMEOUT)) ready
  while :; do
    ((STOPPING == 0)) || exit 0
    ready=0
    for ((i = 1; i <= nodes; i++)); do
      if grep -q '^READY ' "$data/node-$i/node.out" 2>/dev/null; then
        ready=$((ready + 1))
      elif ! kill -0 "${CLUSTER_PIDS[i - 1]}" 2>/dev/null; then
        tail -n 40 "$data/node-$i/node.err" >&2
        die 1 "node $i exited before it was ready (log: $data/node-$i/broker.log)"
      fi
    done
    ((ready < nodes)) || break
    ((SECONDS < deadline)) || die 1 "the cluster was not ready within ${READY_TIMEOUT}s (logs: $data/node-*/broker.log)"
    sleep 0.2
  done
  printf '%s\n' "$env"
  printf 'READY %s\n' "$(env_get "$data/cluster.env" PLAINTEXT)"
  while ((STOPPING == 0)); do
    for ((i = 1; i <= nodes; i++)); do
      if ! kill -0 "${CLUSTER_PIDS[i - 1]}" 2>/dev/null; then
        tail -n 40 "$data/node-$i/node.err" >&2
        die 1 "node $i exited (log: $data/node-$i/broker.log)"
      fi
    done
    sleep 1
  done
}
