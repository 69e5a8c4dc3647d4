#!/usr/bin/env bash
# DNS over HTTPS serving (issue 17): exdns's `https://` listener against dnsdist's DoH frontend,
# both answering every name themselves (exdns: `cache` + `template`, so every answer after the
# first is a fast-path hit; dnsdist: `SpoofAction`), loaded by h2load (nghttp2's HTTP/2 load
# generator) over TLS with GET and POST at several loads, up to and past each server's peak
# (exdns still gains from 16x64 to 16x128; dnsdist peaks near 16x64 and loses beyond). (dnsperf 2.10's DoH
# mode counts answered queries as lost with more than one in flight per connection, and its
# POSTs wait on Nagle: it cannot load either server.) Reports qps, the server's CPU time per
# answer and h2load's per request, and the ratios at each server's peak. Installs nothing: it
# checks its tools and says what is missing. Report: results/doh.md.
#   bench/doh.sh
#   REQUESTS=20000 REPEAT=1 bench/doh.sh  # a quick run
#   EXDNS_BIN=path/to/exdns bench/doh.sh  # benchmark a given binary (no cargo build)
#   METHODS=GET LOADS=8x32 bench/doh.sh   # GET only, one load (connections x streams)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
REQUESTS="${REQUESTS:-200000}"
# Loads: connections × streams in flight on each.
# A server keeps at most its SETTINGS_MAX_CONCURRENT_STREAMS in flight per connection
# (reported below), whatever h2load asks for.
LOADS="${LOADS:-4x16 8x32 16x64 32x64 16x128 32x128}"
REPEAT="${REPEAT:-3}"
METHODS="${METHODS:-GET POST}"
bench_init
bench_need bench/doh "apt-get install nghttp2-client dnsdist openssl bind9-dnsutils python3" \
  h2load dnsdist openssl dig python3
[ -x /usr/bin/time ] || { echo "bench/doh: missing /usr/bin/time (apt-get install time)" >&2; exit 1; }
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

declare -A PID PORT
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

# max_streams PORT: the SETTINGS_MAX_CONCURRENT_STREAMS the server at PORT sends (nghttp, from
# nghttp2-client as h2load), "?" without nghttp.
max_streams() {
  { nghttp -nv "https://127.0.0.1:$1/" 2>/dev/null || true; } |
    awk -F'[:\\]]' '/recv SETTINGS/ {s = 1} s && /MAX_CONCURRENT_STREAMS/ {print $2; exit}' | grep . || echo "?"
}

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

# run NAME PORT METHOD CONNS STREAMS: one h2load run (HTTP/2 over TLS, STREAMS in flight on
# each of CONNS connections, REQUESTS requests); prints "qps succeeded_pct h2load_us", the last
# h2load's own CPU time per request.
run() {
  local log="$WORK/$1-$3.h2load" url="https://127.0.0.1:$2/dns-query"
  local h2=(h2load -n "$REQUESTS" -c "$4" -m "$5" -t 1)
  if [ "$3" = GET ]; then
    /usr/bin/time -o "$log.time" -f "%U %S" "${h2[@]}" "$url?dns=$B64" >"$log" 2>&1 || true
  else
    /usr/bin/time -o "$log.time" -f "%U %S" "${h2[@]}" -d "$WORK/query.bin" \
      -H 'content-type: application/dns-message' -H 'accept: application/dns-message' "$url" >"$log" 2>&1 || true
  fi
  python3 - "$log" "$REQUESTS" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"finished in [^,]+, ([0-9.]+) req/s", text)
ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", text)
try:
    u, s = open(sys.argv[1] + ".time").read().split()[-2:]
    client = f"{(float(u) + float(s)) * 1e6 / int(sys.argv[2]):.1f}"
except (OSError, ValueError):
    client = "n/a"
if not m or not ok:
    print(f"0 0.00 {client}"); sys.stderr.write(text)
else:
    print(f"{float(m.group(1)):.0f} {100 * int(ok.group(1)) / int(sys.argv[2]):.2f} {client}")
PY
}
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Per server, method and load: the best run's "qps succeeded_pct h2load_us" (R), the server's
# CPU per answer over all REPEAT runs (CPU). The two servers take turns, run by run.
declare -A R CPU TICKS ANSWERS
PORT[exdns]=$PORT_EX
PORT[dnsdist]=$PORT_DD
for method in $METHODS; do
  for load in $LOADS; do
    IFS=x read -r conns streams <<<"$load"
    for _ in $(seq 1 "$REPEAT"); do
      for name in exdns dnsdist; do
        k=$name-$method-$load
        t0=$(proc_ticks "${PID[$name]}")
        r=$(run "$name" "${PORT[$name]}" "$method" "$conns" "$streams")
        t1=$(proc_ticks "${PID[$name]}")
        read -r q pct _ <<<"$r"
        TICKS[$k]=$((${TICKS[$k]:-0} + t1 - t0))
        ANSWERS[$k]=$(python3 -c "print(${ANSWERS[$k]:-0} + round($REQUESTS * $pct / 100))")
        if [ -z "${R[$k]:-}" ] || ((q > ${R[$k]%% *})); then R[$k]=$r; fi
      done
    done
    for name in exdns dnsdist; do
      k=$name-$method-$load
      CPU[$k]=$(python3 -c "q = ${ANSWERS[$k]}; print(f'{${TICKS[$k]} / $(getconf CLK_TCK) * 1e6 / q:.1f}' if q else 'n/a')")
      echo "bench/doh: $name $method $load: ${R[$k]} (qps succeeded% h2load-µs), ${CPU[$k]} µs CPU per answer" >&2
    done
  done
done

# peak NAME METHOD: the load at which NAME answered the most queries per second.
peak() {
  local best="" load
  for load in $LOADS; do
    if [ -z "$best" ] || ((${R[$1-$2-$load]%% *} > ${R[$1-$2-$best]%% *})); then best=$load; fi
  done
  echo "$best"
}

{
  echo "# DNS over HTTPS serving: exdns vs dnsdist's DoH frontend"
  echo
  bench_machine
  echo "Servers and the load generator share the machine's cores over loopback."
  echo "Streams in flight per connection at most (the server's SETTINGS_MAX_CONCURRENT_STREAMS, whatever the load asks): exdns $(max_streams "$PORT_EX"), dnsdist $(max_streams "$PORT_DD")."
  echo
  echo "exdns $(bench_rev): \`https://\` block with \`tls\` (private CA, certificate for \`$SNI\`), \`cache\` + \`template\` answering every A under \`$ZONE\`."
  echo "dnsdist $(dnsdist --version | awk 'NR==1 {print $2}'): \`addDOHLocal\` (its h2o DoH frontend) with the same certificate, \`SpoofAction(\"192.0.2.1\")\` for every query (no backend)."
  echo "Load: h2load $(h2load --version | awk 'NR==1 {print $2}') (HTTP/2 over TLS, one thread), $REQUESTS requests per run, the same query (ID 0) every time, at each load (connections × streams in flight on each) $REPEAT runs per server, the servers taking turns; qps: the best run; CPU per answer: the server's user + system time over all its runs at that load divided by the successful answers; h2load's own CPU per request in the best run."
  echo
  echo "| server | method | load | qps | succeeded (%) | server CPU per answer (µs) | h2load CPU per request (µs) |"
  echo "|---|---|---|---:|---:|---:|---:|"
  for method in $METHODS; do
    for load in $LOADS; do
      for name in exdns dnsdist; do
        read -r q p c <<<"${R[$name-$method-$load]}"
        echo "| $name | $method | $load | $q | $p | ${CPU[$name-$method-$load]} | $c |"
      done
    done
  done
  echo
  echo "Saturation: each server at the load where it answered the most (its peak); the targets are ≥ 1.5× dnsdist's qps and ≤ 0.7× its CPU per answer."
  echo
  for method in $METHODS; do
    pe=$(peak exdns "$method") pd=$(peak dnsdist "$method")
    echo "- $method at saturation: exdns ${R[exdns-$method-$pe]%% *} qps ($pe) / dnsdist ${R[dnsdist-$method-$pd]%% *} ($pd) = **$(ratio "${R[exdns-$method-$pe]%% *}" "${R[dnsdist-$method-$pd]%% *}")×**; CPU per answer ${CPU[exdns-$method-$pe]} / ${CPU[dnsdist-$method-$pd]} µs = **$(ratio "${CPU[exdns-$method-$pe]}" "${CPU[dnsdist-$method-$pd]}")×**."
    for load in $LOADS; do
      echo "  - at $load: qps $(ratio "${R[exdns-$method-$load]%% *}" "${R[dnsdist-$method-$load]%% *}")×, CPU per answer $(ratio "${CPU[exdns-$method-$load]}" "${CPU[dnsdist-$method-$load]}")×"
    done
  done
} >"$OUT/doh.md"
cat "$OUT/doh.md"
