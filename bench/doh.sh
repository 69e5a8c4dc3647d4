#!/usr/bin/env bash
# DNS over HTTPS serving (issue 17): exdns's `https://` listener against dnsdist's DoH frontend,
# both answering every name themselves (exdns: `cache` + `template`, so every answer after the
# first is a fast-path hit; dnsdist: `SpoofAction`), loaded by h2load (nghttp2's HTTP/2 load
# generator) over TLS with GET and POST to saturation. (dnsperf 2.10's DoH mode counts answered
# queries as lost with more than one in flight per connection, and its POSTs wait on Nagle: it
# cannot load either server.) Reports qps and the server's CPU time per answer. Installs
# nothing: it checks its tools and says what is missing. Report: results/doh.md.
#   bench/doh.sh
#   REQUESTS=20000 REPEAT=1 bench/doh.sh  # a quick run
#   EXDNS_BIN=path/to/exdns bench/doh.sh  # benchmark a given binary (no cargo build)
#   METHODS=GET bench/doh.sh              # GET only
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
REQUESTS="${REQUESTS:-200000}"
CLIENTS="${CLIENTS:-4}"
STREAMS="${STREAMS:-16}"
REPEAT="${REPEAT:-3}"
METHODS="${METHODS:-GET POST}"
bench_init
bench_need bench/doh "apt-get install nghttp2-client dnsdist openssl bind9-dnsutils python3" \
  h2load dnsdist openssl dig python3
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

# The query (name1.ZONE A, ID 0 as RFC 8484 recommends) as a POST body and a GET parameter.
python3 - "$ZONE" "$WORK/query.bin" "$WORK/query.b64" <<'PY'
import base64, struct, sys
zone, binf, b64f = sys.argv[1:4]
qname = b"".join(bytes([len(l)]) + l.encode() for l in ("name1." + zone).split(".")) + b"\0"
q = struct.pack("!HHHHHH", 0, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
open(binf, "wb").write(q)
open(b64f, "w").write(base64.urlsafe_b64encode(q).decode().rstrip("="))
PY
B64=$(cat "$WORK/query.b64")

# run NAME PORT METHOD: one h2load run (HTTP/2 over TLS, STREAMS in flight on each of CLIENTS
# connections, REQUESTS requests); prints "qps succeeded_pct".
run() {
  local log="$WORK/$1-$3.h2load" url="https://127.0.0.1:$2/dns-query"
  if [ "$3" = GET ]; then
    /usr/bin/time -o "$log.time" -f "%U %S" h2load -n "$REQUESTS" -c "$CLIENTS" -m "$STREAMS" -t 1 "$url?dns=$B64" >"$log" 2>&1 || true
  else
    /usr/bin/time -o "$log.time" -f "%U %S" h2load -n "$REQUESTS" -c "$CLIENTS" -m "$STREAMS" -t 1 -d "$WORK/query.bin" \
      -H 'content-type: application/dns-message' -H 'accept: application/dns-message' "$url" >"$log" 2>&1 || true
  fi
  python3 - "$log" "$REQUESTS" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
try:
    u, s_ = open(sys.argv[1] + ".time").read().split()[-2:]
    sys.stderr.write(f"bench/doh: h2load CPU {(float(u) + float(s_)) * 1e6 / int(sys.argv[2]):.1f} µs per request\n")
except Exception:
    pass
m = re.search(r"finished in [^,]+, ([0-9.]+) req/s", text)
ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", text)
if not m or not ok:
    print("0 0.00"); sys.stderr.write(text)
else:
    print(f"{float(m.group(1)):.0f} {100 * int(ok.group(1)) / int(sys.argv[2]):.2f}")
PY
}
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A R CPU
for method in $METHODS; do
  for s in exdns:$PORT_EX dnsdist:$PORT_DD; do
    IFS=: read -r name port <<<"$s"
    # The best of REPEAT runs; CPU per answer over all of them.
    t0=$(proc_ticks "${PID[$name]}")
    total=0 best_r=""
    for _ in $(seq 1 "$REPEAT"); do
      r=$(run "$name" "$port" "$method")
      read -r _q pct <<<"$r"
      total=$(python3 -c "print($total + round($REQUESTS * $pct / 100))")
      if [ -z "$best_r" ] || ((${r%% *} > ${best_r%% *})); then best_r=$r; fi
    done
    R[$name-$method]=$best_r
    t1=$(proc_ticks "${PID[$name]}")
    CPU[$name-$method]=$(python3 -c "q = $total; print(f'{($t1 - $t0) / $(getconf CLK_TCK) * 1e6 / q:.1f}' if q else 'n/a')")
    echo "bench/doh: $name $method: ${R[$name-$method]} (qps succeeded%), ${CPU[$name-$method]} µs CPU per answer" >&2
  done
done

{
  echo "# DNS over HTTPS serving: exdns vs dnsdist's DoH frontend"
  echo
  bench_machine
  echo "Servers and the load generator share the machine's cores over loopback."
  echo
  echo "exdns $(bench_rev): \`https://\` block with \`tls\` (private CA, certificate for \`$SNI\`), \`cache\` + \`template\` answering every A under \`$ZONE\`."
  echo "dnsdist $(dnsdist --version | awk 'NR==1 {print $2}'): \`addDOHLocal\` (its h2o DoH frontend) with the same certificate, \`SpoofAction(\"192.0.2.1\")\` for every query (no backend)."
  echo "Load: h2load $(h2load --version | awk 'NR==1 {print $2}') (HTTP/2 over TLS, one thread), $REQUESTS requests per run, best of $REPEAT runs, $CLIENTS connections with $STREAMS streams in flight each, the same query (ID 0) every time. CPU per answer: the server's user + system time over all $REPEAT runs divided by the successful answers."
  echo
  echo "| server | method | qps | succeeded (%) | server CPU per answer (µs) |"
  echo "|---|---|---:|---:|---:|"
  for method in $METHODS; do
    for name in exdns dnsdist; do
      read -r q p <<<"${R[$name-$method]}"
      echo "| $name | $method | $q | $p | ${CPU[$name-$method]} |"
    done
  done
  echo
  for method in $METHODS; do
    echo "- $method: exdns/dnsdist qps **$(ratio "${R[exdns-$method]%% *}" "${R[dnsdist-$method]%% *}")×** (target ≥ 1.5×), CPU per answer **$(ratio "${CPU[exdns-$method]}" "${CPU[dnsdist-$method]}")×** dnsdist's (target ≤ 0.7×)."
  done
} >"$OUT/doh.md"
cat "$OUT/doh.md"
