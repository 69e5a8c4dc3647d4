#!/usr/bin/env bash
# Scenario 2: forwarding over DNS over TLS (DoT). One local unbound is the DoT upstream; exdns
# (forward, with and without cache), unbound as a forwarder and dnsdist forward to it over TLS,
# each on its own loopback port, and dnsperf drives each over UDP. Installs nothing: it checks
# its tools and says what is missing. See bench/README.md.
#   bench/dot.sh                          # alone (bench/run.sh also calls it at its end)
#   DURATION=3 bench/dot.sh               # a quick run
#   EXDNS_BIN=path/to/exdns bench/dot.sh  # benchmark a given binary (no cargo build)
#
# Cache-miss runs use names that server was never asked before (a fresh name range per
# server and run); the upstream answers every name under bench.test from memory (a `redirect`
# local zone). Cache-hit runs repeat a small set of names, asked once before the run.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
DURATION="${DURATION:-10}"
CLIENTS="${CLIENTS:-8}"
OUTSTANDING="${OUTSTANDING:-500}"
MISS_NAMES="${MISS_NAMES:-$((DURATION * 100000))}" # unique names per cache-miss run (≥ 100k qps)
HIT_NAMES="${HIT_NAMES:-1000}"
bench_init
bench_need bench/dot "apt-get install dnsperf unbound dnsdist openssl bind9-dnsutils python3" \
  dnsperf unbound unbound-checkconf dnsdist openssl dig python3
bench_exdns

SNI=dns.$ZONE
PORT_UP="${PORT_UP:-15853}"     # upstream unbound: DoT (and plain UDP for the readiness check)
PORT_EX="${PORT_EX:-15361}"     # exdns, forward only
PORT_EXC="${PORT_EXC:-15362}"   # exdns, cache + forward
PORT_UB="${PORT_UB:-15363}"     # unbound forwarder
PORT_DD="${PORT_DD:-15364}"     # dnsdist, no packet cache
PORT_DDPC="${PORT_DDPC:-15365}" # dnsdist, packet cache

# A private CA and the upstream's certificate (leaf: CA:FALSE, SAN dns.bench.test).
make_cert "$SNI"
CA="$WORK/ca.pem"

# The upstream: one thread (it gets one of the cores; the forwarder under test and dnsperf share
# the rest), every name under bench.test answered from memory by a redirect local zone.
cat >"$WORK/upstream.conf" <<EOC
server:
    interface: 127.0.0.1@$PORT_UP
    tls-port: $PORT_UP
    tls-service-key: "$WORK/server.key"
    tls-service-pem: "$WORK/server.pem"
    num-threads: 1
    incoming-num-tcp: 1000
    tcp-idle-timeout: 120000
    username: ""
    chroot: ""
    directory: "$WORK"
    pidfile: "$WORK/upstream.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    local-zone: "$ZONE." redirect
    local-data: "$ZONE. 3600 IN A 192.0.2.1"
remote-control:
    control-enable: no
EOC

# unbound as a forwarder: as many threads as cores, like exdns and dnsdist.
cat >"$WORK/unbound-fwd.conf" <<EOC
server:
    interface: 127.0.0.1@$PORT_UB
    num-threads: $(nproc)
    so-reuseport: yes
    username: ""
    chroot: ""
    directory: "$WORK"
    pidfile: "$WORK/unbound-fwd.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    do-not-query-localhost: no
    qname-minimisation: no
    local-zone: "test." nodefault # unbound serves test. as NXDOMAIN by default (RFC 6761)
    tls-cert-bundle: "$CA"
    msg-cache-size: 256m
    rrset-cache-size: 256m
forward-zone:
    name: "."
    forward-tls-upstream: yes
    forward-addr: 127.0.0.1@$PORT_UP#$SNI
remote-control:
    control-enable: no
EOC

dnsdist_conf() { # port cache(0|1)
  cat <<EOC
setLocal("127.0.0.1:$1")
setSecurityPollSuffix("")
newServer({address="127.0.0.1:$PORT_UP", tls="openssl", subjectName="$SNI", caStore="$CA",
           validateCertificates=true, maxInFlight=64, checkName="check.$ZONE."})
EOC
  if [ "$2" = 1 ]; then
    echo 'getPool(""):setCache(newPacketCache(200000, {maxTTL=86400}))'
  fi
}
dnsdist_conf "$PORT_DD" 0 >"$WORK/dnsdist.conf"
dnsdist_conf "$PORT_DDPC" 1 >"$WORK/dnsdist-pc.conf"

forward_block() {
  cat <<EOC
    forward . tls://127.0.0.1:$PORT_UP {
        tls $CA
        tls_servername $SNI
    }
EOC
}
# Bound to 127.0.0.1 like the others (bench/lib.sh, exdns_block).
{ echo ".:$PORT_EX {"; echo "    bind 127.0.0.1"; forward_block; echo "}"; } >"$WORK/Corefile"
{ echo ".:$PORT_EXC {"; echo "    bind 127.0.0.1"; echo "    cache"; forward_block; echo "}"; } >"$WORK/Corefile-cache"

unbound-checkconf "$WORK/upstream.conf" >/dev/null
unbound-checkconf "$WORK/unbound-fwd.conf" >/dev/null
dnsdist --check-config -C "$WORK/dnsdist.conf" >/dev/null
dnsdist --check-config -C "$WORK/dnsdist-pc.conf" >/dev/null

PIDS=()
unbound -d -c "$WORK/upstream.conf" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
declare -A PID # server name -> process, for its CPU time
"$EXDNS" -conf "$WORK/Corefile" -quiet >"$WORK/exdns.log" 2>&1 &
PIDS+=($!) PID[exdns]=$!
"$EXDNS" -conf "$WORK/Corefile-cache" -quiet >"$WORK/exdns-cache.log" 2>&1 &
PIDS+=($!) PID[exdns-cache]=$!
unbound -d -c "$WORK/unbound-fwd.conf" >"$WORK/unbound-fwd.log" 2>&1 &
PIDS+=($!) PID[unbound]=$!
dnsdist --supervised --disable-syslog -C "$WORK/dnsdist.conf" >"$WORK/dnsdist.log" 2>&1 &
PIDS+=($!) PID[dnsdist]=$!
dnsdist --supervised --disable-syslog -C "$WORK/dnsdist-pc.conf" >"$WORK/dnsdist-pc.log" 2>&1 &
PIDS+=($!) PID[dnsdist-pc]=$!

# Ready: the server answers a name under bench.test with the upstream's address (through TLS
# for the forwarders: a TLS or certificate problem shows up here as SERVFAIL).
wait_ready() { # name port log [dig options]
  local i
  for i in $(seq 1 100); do
    for p in "${PIDS[@]}"; do
      kill -0 "$p" 2>/dev/null || { echo "bench/dot: a server exited:"; tail -n 5 "$WORK"/*.log; exit 1; }
    done
    if [ "$(dig +short +tries=1 +time=1 ${4:-} @127.0.0.1 -p "$2" "ready$i.$ZONE" A 2>/dev/null)" = 192.0.2.1 ]; then
      return 0
    fi
    sleep 0.2
  done
  echo "bench/dot: $1 does not answer"; cat "$3"; exit 1
}
wait_ready upstream "$PORT_UP" "$WORK/upstream.log"
wait_ready "upstream (DoT)" "$PORT_UP" "$WORK/upstream.log" "+tls +tls-ca=$CA +tls-hostname=$SNI"
wait_ready exdns "$PORT_EX" "$WORK/exdns.log"
wait_ready exdns-cache "$PORT_EXC" "$WORK/exdns-cache.log"
wait_ready unbound "$PORT_UB" "$WORK/unbound-fwd.log"
wait_ready dnsdist "$PORT_DD" "$WORK/dnsdist.log"
wait_ready dnsdist-pc "$PORT_DDPC" "$WORK/dnsdist-pc.log"

# Query files: a fresh range of unique names per miss run; one small set for the hit runs.
miss_file() { # tag
  seq 1 "$MISS_NAMES" | sed "s/.*/$1&.$ZONE A/" >"$WORK/q-$1"
  echo "$WORK/q-$1"
}
seq 1 "$HIT_NAMES" | sed "s/.*/hit&.$ZONE A/" >"$WORK/q-hit"

# run NAME MODE PORT FILE [dnsperf options]: one dnsperf run; prints "qps avg_ms lost_pct sent rcodes".
run() {
  local name=$1 mode=$2 port=$3 file=$4 log="$WORK/$1-$2.perf"
  shift 4
  dnsperf -s 127.0.0.1 -p "$port" -d "$file" -l "$DURATION" -c "$CLIENTS" -T 1 \
    -q "$OUTSTANDING" "$@" >"$log" 2>&1 || { cat "$log" >&2; }
  python3 - "$log" <<'PY'
import sys
qps = avg = lost = sent = None
rcodes = "-"
for line in open(sys.argv[1]):
    if "Queries per second:" in line:
        qps = float(line.split()[-1])
    elif "Average Latency (s):" in line:
        avg = float(line.split()[3])
    elif "Queries lost:" in line:
        lost = float(line.split("(")[1].rstrip("%)\n"))
    elif "Queries sent:" in line:
        sent = int(line.split()[-1])
    elif "Response codes:" in line:
        rcodes = line.split(":", 1)[1].strip().replace(" ", "")
if qps is None:
    print("0 nan 100.00 0 failed")
else:
    print(f"{qps:.0f} {avg * 1000:.3f} {lost:.2f} {sent} {rcodes}")
PY
}

declare -A R CPU
record() { # key result
  R[$1]=$2
  echo "bench/dot: $1: $2 (qps avg_ms lost% sent rcodes)" >&2
}
# The CPU time (user + system, all threads) a process has used, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# measure KEY NAME MODE PORT FILE [dnsperf options]: a run, with the server's CPU time per answer.
measure() {
  local key=$1 name=$2 t0 t1
  shift 2
  t0=$(cpu_ticks "${PID[$name]}")
  record "$key" "$(run "$name" "$@")"
  t1=$(cpu_ticks "${PID[$name]}")
  CPU[$key]=$(python3 -c "q = ${R[$key]%% *} * $DURATION; print(f'{($t1 - $t0) / $(getconf CLK_TCK) * 1e6 / q:.1f}' if q else 'n/a')")
  echo "bench/dot: $key: ${CPU[$key]} µs of server CPU per answered query" >&2
}
# The ceiling: the upstream's own DoT capacity, dnsperf speaking DoT to it directly.
f=$(miss_file direct)
record direct-miss "$(run direct miss "$PORT_UP" "$f" -m dot)"
rm -f "$f"
for s in exdns:$PORT_EX exdns-cache:$PORT_EXC unbound:$PORT_UB dnsdist:$PORT_DD; do
  IFS=: read -r name port <<<"$s"
  f=$(miss_file "$name-")
  measure "$name-miss" "$name" miss "$port" "$f"
  rm -f "$f"
done
for s in exdns-cache:$PORT_EXC unbound:$PORT_UB dnsdist-pc:$PORT_DDPC; do
  IFS=: read -r name port <<<"$s"
  # Fill the cache: every hit name asked once before the run.
  dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/q-hit" -n 1 -q 100 >/dev/null 2>&1
  measure "$name-hit" "$name" hit "$port" "$WORK/q-hit"
done

qps() { awk '{print $1}' <<<"${R[$1]}"; }
verdict() { python3 -c "a, b = $1, $2; print('met' if b and a / b >= $3 else 'missed')"; }
r_dd=$(ratio "$(qps exdns-miss)" "$(qps dnsdist-miss)")
r_up=$(ratio "$(qps exdns-miss)" "$(qps direct-miss)")
r_ub=$(ratio "$(qps exdns-cache-hit)" "$(qps unbound-hit)")
{
  echo "# Forwarding over DoT: exdns vs unbound and dnsdist against the same upstream"
  echo
  bench_machine
  echo "Upstream, forwarders and dnsperf share the machine's cores over loopback."
  echo
  echo "Upstream: unbound $(unbound_version) on 127.0.0.1:$PORT_UP, DoT (\`tls-port\`, a private CA, certificate for \`$SNI\`), \`num-threads: 1\`,"
  echo "every name under \`$ZONE\` answered from memory (\`local-zone: $ZONE. redirect\`, one A record, TTL 3600)."
  echo "Forwarders, each on its own port, all verifying the upstream's certificate against the CA and \`$SNI\`:"
  echo "exdns $(bench_rev) (\`forward . tls://…\`, without and with \`cache\`),"
  echo "unbound $(unbound_version) (\`forward-tls-upstream\`, $(nproc) threads),"
  echo "dnsdist $(dnsdist --version | awk 'NR==1 {print $2}') (\`tls=\"openssl\"\`, \`maxInFlight=64\`; packet cache off for misses, on for hits)."
  echo
  echo "Load: dnsperf $(dnsperf_version) over UDP, ${DURATION} s per run, $CLIENTS clients, 1 thread, $OUTSTANDING queries outstanding."
  echo "**Miss**: names that server was never asked before ($MISS_NAMES unique names per run, a range of its own; \`sent\` above that means dnsperf wrapped around and repeated names)."
  echo "**Hit**: $HIT_NAMES names, each asked once before the run, repeated. **Upstream direct**: dnsperf \`-m dot\` to the upstream itself ($CLIENTS TLS connections) — the ceiling for misses."
  echo
  echo "| server | run | qps | avg latency (ms) | lost (%) | sent | server CPU per answer (µs) | response codes |"
  echo "|---|---|---:|---:|---:|---:|---:|---|"
  for k in direct-miss exdns-miss exdns-cache-miss unbound-miss dnsdist-miss exdns-cache-hit unbound-hit dnsdist-pc-hit; do
    read -r q a l s c <<<"${R[$k]}"
    case $k in
      direct-*) label="upstream direct (DoT)" ;;
      exdns-cache-*) label="exdns + cache" ;;
      dnsdist-pc-*) label="dnsdist + packet cache" ;;
      *) label=${k%-*} ;;
    esac
    if [ "${k##*-}" = miss ] && [ "$s" -gt "$MISS_NAMES" ]; then s="$s (names repeated)"; fi
    echo "| $label | ${k##*-} | $q | $a | $l | $s | ${CPU[$k]:-–} | $c |"
  done
  echo
  echo "| target (issue 4) | ratio | |"
  echo "|---|---:|---|"
  echo "| misses: exdns / dnsdist ≥ 3× | **$r_dd×** | $(verdict "$(qps exdns-miss)" "$(qps dnsdist-miss)" 3) |"
  echo "| misses: exdns / upstream direct ≥ 0.7× | **$r_up×** | $(verdict "$(qps exdns-miss)" "$(qps direct-miss)" 0.7) |"
  echo "| hits: exdns + cache / unbound ≥ 1× | **$r_ub×** | $(verdict "$(qps exdns-cache-hit)" "$(qps unbound-hit)" 1) |"
  echo "| hits, CPU per answer: unbound / exdns + cache (≥ 1× when exdns spends less) | **$(ratio "${CPU[unbound-hit]}" "${CPU[exdns-cache-hit]}")×** | $(verdict "${CPU[unbound-hit]}" "${CPU[exdns-cache-hit]}" 1) |"
  echo
  echo "Server CPU per answer: the server process's user + system time over the run (all its threads, from"
  echo "\`/proc/PID/stat\`) divided by the queries it answered. When every server nears the rate dnsperf itself can"
  echo "drive on these shared cores, qps stops telling them apart and this figure still does (for misses it"
  echo "leaves out the upstream's work)."
  echo
  echo "dnsperf's own TLS client runs on the same cores: the upstream-direct figure includes its TLS cost (a forwarder"
  echo "pays that cost itself instead, on fewer pipelined connections), so a forwarder can exceed it."
  echo "Latency is dnsperf's average from send to receive, mostly queueing at full load ($OUTSTANDING queries in flight);"
  echo "\`lost\`: queries without an answer within dnsperf's 5 s timeout."
} | tee "$OUT/dot.md"
