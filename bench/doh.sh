#!/usr/bin/env bash
# DNS over HTTPS serving (issue 17): exdns's `https://` listener against dnsdist's DoH frontend,
# both answering every name themselves (exdns: `cache` + `template`, so every answer after the
# first is a fast-path hit; dnsdist: `SpoofAction`), driven by dnsperf `-m doh` over HTTP/2 and
# TLS with POST and GET. Reports qps and the server's CPU time per answer. Installs nothing: it
# checks its tools and says what is missing. Report: results/doh.md.
#   bench/doh.sh
#   DURATION=3 bench/doh.sh               # a quick run
#   EXDNS_BIN=path/to/exdns bench/doh.sh  # benchmark a given binary (no cargo build)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
DURATION="${DURATION:-10}"
# One query in flight per connection: dnsperf 2.10's DoH client loses replies (counts them lost
# though the server answered 200) when several are in flight on one HTTP/2 connection, against
# exdns and dnsdist alike.
CLIENTS="${CLIENTS:-4}"
OUTSTANDING="${OUTSTANDING:-4}"
REPEAT="${REPEAT:-3}"
NAMES_N="${NAMES_N:-1000}"
bench_init
bench_need bench/doh "apt-get install dnsperf dnsdist openssl bind9-dnsutils python3" \
  dnsperf dnsdist openssl dig python3
bench_exdns

SNI=dns.$ZONE
PORT_EX="${PORT_EX:-15443}"
PORT_DD="${PORT_DD:-15444}"
PORT_DD_UDP="${PORT_DD_UDP:-15445}" # dnsdist's plain listener (unused by the runs)
make_cert "$SNI"

cat >"$WORK/Corefile" <<EOC
https://.:$PORT_EX {
    bind 127.0.0.1
    tls $WORK/server.pem $WORK/server.key
    cache
    template IN A $ZONE {
        answer "{{ .Name }} 60 IN A 192.0.2.1"
    }
}
EOC
cat >"$WORK/dnsdist.conf" <<EOC
setLocal("127.0.0.1:$PORT_DD_UDP")
setSecurityPollSuffix("")
addDOHLocal("127.0.0.1:$PORT_DD", "$WORK/server.pem", "$WORK/server.key", "/dns-query")
addAction(AllRule(), SpoofAction("192.0.2.1"))
EOC
dnsdist --check-config -C "$WORK/dnsdist.conf" >/dev/null

declare -A PID
"$EXDNS" -conf "$WORK/Corefile" -quiet >"$WORK/exdns.log" 2>&1 &
PID[exdns]=$!
dnsdist --supervised --disable-syslog -C "$WORK/dnsdist.conf" >"$WORK/dnsdist.log" 2>&1 &
PID[dnsdist]=$!

wait_doh() { # name port
  local i
  for i in $(seq 1 100); do
    kill -0 "${PID[$1]}" 2>/dev/null || { echo "bench/doh: $1 exited:"; cat "$WORK/$1.log"; exit 1; }
    if [ "$(dig +short +tries=1 +time=1 +https +tls-ca="$WORK/ca.pem" +tls-hostname="$SNI" @127.0.0.1 -p "$2" "ready$i.$ZONE" A 2>/dev/null)" = 192.0.2.1 ]; then
      return 0
    fi
    sleep 0.2
  done
  echo "bench/doh: $1 does not answer over DoH"; cat "$WORK/$1.log"; exit 1
}
wait_doh exdns "$PORT_EX"
wait_doh dnsdist "$PORT_DD"

seq 1 "$NAMES_N" | sed "s/.*/name&.$ZONE A/" >"$WORK/queries"

# run NAME PORT METHOD: one dnsperf run; prints "qps avg_ms lost_pct rcodes".
run() {
  local log="$WORK/$1-$3.perf"
  dnsperf -m doh -O "doh-uri=https://$SNI/dns-query" -O "doh-method=$3" -s 127.0.0.1 -p "$2" \
    -d "$WORK/queries" -l "$DURATION" -c "$CLIENTS" -T 1 -q "$OUTSTANDING" >"$log" 2>&1 || cat "$log" >&2
  python3 - "$log" <<'PY'
import sys
qps = avg = lost = None
rcodes = "-"
for line in open(sys.argv[1]):
    if "Queries per second:" in line:
        qps = float(line.split()[-1])
    elif "Average Latency (s):" in line and avg is None:
        avg = float(line.split()[3])
    elif "Queries lost:" in line:
        lost = float(line.split("(")[1].rstrip("%)\n"))
    elif "Response codes:" in line:
        rcodes = line.split(":", 1)[1].strip().replace(" ", "")
print("0 nan 100.00 failed" if qps is None else f"{qps:.0f} {avg * 1000:.3f} {lost:.2f} {rcodes}")
PY
}
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A R CPU
for method in POST GET; do
  for s in exdns:$PORT_EX dnsdist:$PORT_DD; do
    IFS=: read -r name port <<<"$s"
    # The best of REPEAT runs (dnsperf's DoH throughput varies from run to run); CPU per answer
    # over all of them.
    t0=$(proc_ticks "${PID[$name]}")
    total=0 best_r=""
    for _ in $(seq 1 "$REPEAT"); do
      r=$(run "$name" "$port" "$method")
      total=$((total + ${r%% *}))
      if [ -z "$best_r" ] || ((${r%% *} > ${best_r%% *})); then best_r=$r; fi
    done
    R[$name-$method]=$best_r
    t1=$(proc_ticks "${PID[$name]}")
    CPU[$name-$method]=$(python3 -c "q = $total * $DURATION; print(f'{($t1 - $t0) / $(getconf CLK_TCK) * 1e6 / q:.1f}' if q else 'n/a')")
    echo "bench/doh: $name $method: ${R[$name-$method]} (qps avg_ms lost% rcodes), ${CPU[$name-$method]} µs CPU per answer" >&2
  done
done

{
  echo "# DNS over HTTPS serving: exdns vs dnsdist's DoH frontend"
  echo
  bench_machine
  echo "Servers and dnsperf share the machine's cores over loopback."
  echo
  echo "exdns $(bench_rev): \`https://\` block with \`tls\` (private CA, certificate for \`$SNI\`), \`cache\` + \`template\` answering every A under \`$ZONE\`."
  echo "dnsdist $(dnsdist --version | awk 'NR==1 {print $2}'): \`addDOHLocal\` (its h2o DoH frontend) with the same certificate, \`SpoofAction(\"192.0.2.1\")\` for every query (no backend)."
  echo "Load: dnsperf $(dnsperf_version) \`-m doh\` (HTTP/2 over TLS), ${DURATION} s per run, best of $REPEAT runs, $CLIENTS clients (connections), 1 thread, $OUTSTANDING queries outstanding (one per connection: dnsperf 2.10's DoH client counts replies as lost when several are in flight on a connection, against either server), $NAMES_N names repeated. CPU per answer: the server's user + system time over all $REPEAT runs divided by the answers."
  echo
  echo "| server | method | qps | avg latency (ms) | lost (%) | server CPU per answer (µs) | response codes |"
  echo "|---|---|---:|---:|---:|---:|---|"
  for method in POST GET; do
    for name in exdns dnsdist; do
      read -r q a l c <<<"${R[$name-$method]}"
      echo "| $name | $method | $q | $a | $l | ${CPU[$name-$method]} | $c |"
    done
  done
  echo
  for method in POST GET; do
    echo "- $method: exdns/dnsdist qps **$(ratio "${R[exdns-$method]%% *}" "${R[dnsdist-$method]%% *}")×**, CPU per answer $(ratio "${CPU[exdns-$method]}" "${CPU[dnsdist-$method]}")× dnsdist's."
  done
} >"$OUT/doh.md"
cat "$OUT/doh.md"
