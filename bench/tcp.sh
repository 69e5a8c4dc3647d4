#!/usr/bin/env bash
# Scenario 3: authoritative answers over TCP and over DNS over TLS (DoT), many queries per
# connection. The data and query mix are scenario 1's (bench/lib.sh: NAMES names, 90 % existing
# names, 5 % NXDOMAIN, 5 % apex NS with glue). Installs nothing: it checks its tools and says
# what is missing. See bench/README.md.
#   bench/tcp.sh                          # alone (bench/run.sh also calls it at its end)
#   DURATION=3 NAMES=1000 bench/tcp.sh    # a quick run
#   EXDNS_BIN=path/to/exdns bench/tcp.sh  # benchmark a given binary (no cargo build)
#
# TCP: exdns (a dns:// block, which serves UDP and TCP), NSD and Knot. DoT: exdns (a tls://
# block with `tls CERT KEY`), NSD (`tls-port`) and unbound serving the same names as local-data
# (`tls-port`); Knot 3.2 has no DoT listener (it serves DoQ, which dnsperf 2.10 cannot speak).
# Every server gets the same certificate (P-256, made here with openssl, a private CA). dnsperf
# opens CONNS connections (-c) and keeps OUTSTANDING queries in flight over them (-q), so each
# connection carries many pipelined queries; connections are opened once, at the start of a run.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
DURATION="${DURATION:-10}"
NAMES="${NAMES:-10000}"
CONNS="${CONNS:-8}"
OUTSTANDING="${OUTSTANDING:-500}"
REPEAT="${REPEAT:-2}"
bench_init
bench_need bench/tcp "apt-get install dnsperf nsd knot unbound openssl bind9-dnsutils python3" \
  dnsperf nsd knotd unbound unbound-checkconf openssl dig python3
bench_exdns

SNI=dns.$ZONE
PORT_EX="${PORT_EX:-15371}"     # exdns, UDP + TCP
PORT_EXT="${PORT_EXT:-15372}"   # exdns, DoT
PORT_NSD="${PORT_NSD:-15373}"   # NSD, UDP + TCP
PORT_NSDT="${PORT_NSDT:-15374}" # NSD, DoT
PORT_KNOT="${PORT_KNOT:-15375}" # Knot, UDP + TCP
PORT_UBT="${PORT_UBT:-15376}"   # unbound, DoT (and plain UDP for the readiness check)

auth_data
make_cert "$SNI"
CA="$WORK/ca.pem"
TLS_OPTS="+tls +tls-ca=$CA +tls-hostname=$SNI"

{
  exdns_block "$ZONE:$PORT_EX"
  exdns_block "tls://$ZONE:$PORT_EXT" "tls $WORK/server.pem $WORK/server.key"
} >"$WORK/Corefile"
# NSD: the DoT port is a second interface; tcp-count (connections per server process) above
# its default of 100.
nsd_conf "$PORT_NSD" "ip-address: 127.0.0.1@$PORT_NSDT" "tls-port: $PORT_NSDT" \
  "tls-service-key: \"$WORK/server.key\"" "tls-service-pem: \"$WORK/server.pem\"" \
  "tcp-count: 1000" >"$WORK/nsd.conf"
knot_conf "$PORT_KNOT" "tcp-workers: $(nproc)" "tcp-max-clients: 1000" >"$WORK/knot.conf"
# unbound: one thread per core, the zone as a static local zone (local-data), validator off.
{
  cat <<EOC
server:
    interface: 127.0.0.1@$PORT_UBT
    tls-port: $PORT_UBT
    tls-service-key: "$WORK/server.key"
    tls-service-pem: "$WORK/server.pem"
    num-threads: $(nproc)
    so-reuseport: yes
    incoming-num-tcp: 1000
    username: ""
    chroot: ""
    directory: "$WORK"
    pidfile: "$WORK/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
EOC
  cat "$WORK/unbound-local.conf"
  printf 'remote-control:\n    control-enable: no\n'
} >"$WORK/unbound.conf"
unbound-checkconf "$WORK/unbound.conf" >/dev/null

"$EXDNS" -conf "$WORK/Corefile" -quiet >"$WORK/exdns.log" 2>&1 &
EX_PID=$!
nsd -d -c "$WORK/nsd.conf" >"$WORK/nsd.log" 2>&1 &
NSD_PID=$!
knotd -c "$WORK/knot.conf" >"$WORK/knot.log" 2>&1 &
KNOT_PID=$!
unbound -d -c "$WORK/unbound.conf" >"$WORK/unbound.log" 2>&1 &
UB_PID=$!

wait_ready exdns "$PORT_EX" "$WORK/exdns.log" +tcp
wait_ready "exdns (DoT)" "$PORT_EXT" "$WORK/exdns.log" "$TLS_OPTS"
wait_ready nsd "$PORT_NSD" "$WORK/nsd.log" +tcp
wait_ready "nsd (DoT)" "$PORT_NSDT" "$WORK/nsd.log" "$TLS_OPTS"
wait_ready knot "$PORT_KNOT" "$WORK/knot.log" +tcp
wait_ready "unbound (DoT)" "$PORT_UBT" "$WORK/unbound.log" "$TLS_OPTS"
check_agree bench/tcp "exdns|$PORT_EX|+tcp" "nsd|$PORT_NSD|+tcp" "knot|$PORT_KNOT|+tcp"
check_agree bench/tcp "exdns|$PORT_EXT|$TLS_OPTS" "nsd|$PORT_NSDT|$TLS_OPTS" "unbound|$PORT_UBT|$TLS_OPTS"

# What a client using OpenSSL (as dnsperf does) negotiates with each DoT server.
tls_session() { # port
  openssl s_client -connect "127.0.0.1:$1" -servername "$SNI" -CAfile "$CA" </dev/null 2>/dev/null |
    awk -F', ' '/^New, / {v = $2; sub("Cipher is ", "", $3); c = $3}
      /^Server Temp Key:/ {sub("Server Temp Key: ", ""); k = $1}
      /Verify return code:/ {r = ($0 ~ /: 0 /) ? "verified" : "NOT verified"}
      END {print v ", " c ", " k ", " r}'
}
declare -A TLS
TLS[exdns]=$(tls_session "$PORT_EXT")
TLS[nsd]=$(tls_session "$PORT_NSDT")
TLS[unbound]=$(tls_session "$PORT_UBT")

# perf NAME MODE PORT: one dnsperf run over MODE (tcp, dot); prints "qps avg p50 p99 lost%
# reconnections" (connections the server closed and dnsperf opened again).
perf() {
  local log="$WORK/$1-$2.perf" r
  r=$(dnsperf_v "$log" -m "$2" -s 127.0.0.1 -p "$3" -d "$WORK/queries" -l "$DURATION" \
    -c "$CONNS" -T 1 -q "$OUTSTANDING")
  echo "$r $(awk '/Reconnections:/ {n = $2} END {print n + 0}' "$log")"
}

declare -A R
for s in exdns:tcp:$PORT_EX nsd:tcp:$PORT_NSD knot:tcp:$PORT_KNOT \
  exdns:dot:$PORT_EXT nsd:dot:$PORT_NSDT unbound:dot:$PORT_UBT; do
  IFS=: read -r name mode port <<<"$s"
  k=$name-$mode
  R[$k]=""
  for _ in $(seq 1 "$REPEAT"); do # best of REPEAT: other processes on the machine add noise
    R[$k]=$(best "${R[$k]}" "$(perf "$name" "$mode" "$port")")
  done
  echo "bench/tcp: $k: ${R[$k]} (qps avg p50 p99 lost% reconnections)" >&2
done

qps() { awk '{print $1}' <<<"${R[$1]}"; }
# vs_best MODE NAME...: "exdns / the best of the others" as "**R×** (vs NAME)".
vs_best() {
  local mode=$1 n top="" topq=0
  shift
  for n in "$@"; do
    if (($(qps "$n-$mode") > topq)); then topq=$(qps "$n-$mode") top=$n; fi
  done
  echo "**$(ratio "$(qps "exdns-$mode")" "$topq")×** (vs $(label "${top:-none}"))"
}
label() { case $1 in nsd) echo NSD ;; knot) echo Knot ;; tcp) echo TCP ;; dot) echo DoT ;; *) echo "$1" ;; esac; }
{
  echo "# Authoritative TCP and DoT: $NAMES names — exdns vs NSD, Knot and unbound"
  echo
  bench_machine
  echo "Servers and dnsperf share the machine's cores over loopback."
  echo
  echo "Load: dnsperf $(dnsperf_version) \`-m tcp\` / \`-m dot\`, ${DURATION} s per run (best of $REPEAT), 1 thread, **$CONNS connections** (\`-c\`),"
  echo "$OUTSTANDING queries outstanding over them (\`-q\`, ≈ $((OUTSTANDING / CONNS)) per connection, pipelined); connections are opened once per run."
  echo "Data and queries as in scenario 1: 90 % existing names (A), 5 % missing names (NXDOMAIN), 5 % apex NS (with glue)."
  echo "exdns $(bench_rev): \`k8s_gateway\` from a manifests directory of $NAMES Ingresses, a \`dns://\` and a \`tls://\` server block in one process;"
  echo "NSD $(nsd_version) ($(nproc) servers, \`tls-port\`), Knot $(knot_version) ($(nproc) TCP workers) from a zone file with the same names;"
  echo "unbound $(unbound_version) ($(nproc) threads, \`tls-port\`) with the same names as \`local-data\` in a static local zone."
  echo "Knot $(knot_version) has no DoT listener (it offers DoQ, which dnsperf cannot drive), and unbound is compared over DoT only."
  echo "One certificate for all (P-256, private CA); what an OpenSSL client (dnsperf's library) negotiates:"
  for n in exdns nsd unbound; do echo "$(label "$n") — ${TLS[$n]};"; done | sed '$ s/;$/./'
  echo
  echo "| server | transport | qps | avg latency (ms) | p50 (ms) | p99 (ms) | lost (%) | reconnections | exdns / server |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  for k in exdns-tcp nsd-tcp knot-tcp exdns-dot nsd-dot unbound-dot; do
    read -r q a p50 p99 l rc <<<"${R[$k]}"
    mode=${k##*-}
    r=$(ratio "$(qps "exdns-$mode")" "$q")
    [ "${k%-*}" = exdns ] && r=""
    echo "| $(label "${k%-*}") | $(label "$mode") | $q | $a | $p50 | $p99 | $l | $rc | ${r:+$r×} |"
  done
  echo
  echo "Max qps, exdns / the best comparison: TCP $(vs_best tcp nsd knot), DoT $(vs_best dot nsd unbound)."
  echo
  echo "Latency is measured by dnsperf from send to receive; at full load it is mostly queueing ($OUTSTANDING queries in flight)."
  echo "\`lost\`: queries without an answer within dnsperf's 5 s timeout; \`reconnections\`: connections the server closed during the run."
  if [ -n "$DISAGREE" ]; then
    echo
    echo "**Note:** the servers' answers differ (rcode, answer and additional records):"
    echo "$DISAGREE_MD"
  fi
} | tee "$OUT/tcp.md"
