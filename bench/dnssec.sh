#!/usr/bin/env bash
# CPU per signed answer (issue 16): exdns's `dnssec` against Knot's mod-onlinesign, serving the
# same zone of NAMES names, asked by one sender (Python, bursts of 64 in flight) cycling through
# the names:
#   exdns-unsigned      file zone, queries without DO (the full path)
#   exdns-signed        file zone + dnssec (ECDSA P-256), queries with DO (signature cache hits)
#   exdns-cached        + cache, queries without DO (fast-path hits)
#   exdns-cached-signed + cache, queries with DO (fast-path hits of signed replies)
#   knot-unsigned       Knot, queries without DO
#   knot-onlinesign     Knot with mod-onlinesign (ECDSA P-256), queries with DO
# The server's CPU time comes from /proc; the sender is the limit, so the figures are CPU per
# answer, not throughput. Report: results/dnssec.md.
#   bench/dnssec.sh                 # 100,000 queries per mode, 1,000 names
#   QUERIES=20000 bench/dnssec.sh
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
QUERIES="${QUERIES:-100000}"
NAMES="${NAMES:-1000}"
PORT="${PORT:-15381}"
bench_init
bench_need dnssec "apt-get install knot python3" knotd python3
bench_exdns
ZONE=example.org

{
  echo "\$ORIGIN $ZONE."
  echo "@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300"
  echo "@ 3600 IN NS ns1"
  echo "ns1 3600 IN A 192.0.2.53"
  for i in $(seq 1 "$NAMES"); do echo "h$i 3600 IN A 10.$((i / 65536 % 256)).$((i / 256 % 256)).$((i % 256))"; done
} >"$WORK/zone"
KEY=fixtures/dnssec/Kexample.org.+013+10744

# send MODE PID DO: the sender; prints "MODE ANSWERS US_CPU_PER_ANSWER QPS SIGNED".
send() {
  python3 - "$PORT" "$QUERIES" "$NAMES" "$1" "$2" "$3" <<'PY'
import os, socket, struct, sys, time
port, n, names, mode, pid, do = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6] == "1"
def query(i):
    qname = b"".join(bytes([len(l)]) + l for l in (f"h{i}".encode(), b"example", b"org")) + b"\0"
    opt = b"\0\x00\x29\x10\x00\x00\x00" + (b"\x80\x00" if do else b"\x00\x00") + b"\x00\x00"
    return struct.pack("!HHHHHH", i & 0xFFFF, 0, 1, 0, 0, 1) + qname + b"\x00\x01\x00\x01" + opt
qs = [query(i) for i in range(1, names + 1)]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", port))
s.settimeout(2)
for q in qs:  # warm up: every name once (signatures made, caches filled)
    s.send(q); s.recv(4096)
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
c0, t0, got, signed, sent = cpu(), time.time(), 0, 0, 0
while sent < n:
    burst = min(64, n - sent)
    for k in range(burst):
        s.send(qs[(sent + k) % names])
    sent += burst
    for _ in range(burst):
        try:
            r = s.recv(4096); got += 1
            # An RRSIG (type 46) among the answer records: ANCOUNT 2.
            signed += struct.unpack("!H", r[6:8])[0] == 2
        except socket.timeout:
            break
c1, t1 = cpu(), time.time()
print(f"{mode} {got} {(c1 - c0) / max(got, 1) * 1e6:.2f} {got / (t1 - t0):.0f} {signed}")
PY
}

run_exdns() {
  local mode=$1 do=$2 extra="" sign=""
  case $mode in *cached*) extra="cache" ;; esac
  case $mode in *signed*) sign=$'dnssec {\n        key file '"$PWD/$KEY"$'\n    }' ;; esac
  cat >"$WORK/Corefile.$mode" <<EOC
$ZONE:$PORT {
    bind 127.0.0.1
    $extra
    file $WORK/zone
    $sign
}
EOC
  "$EXDNS" -conf "$WORK/Corefile.$mode" -quiet >"$WORK/exdns.$mode.log" 2>&1 &
  local pid=$!
  sleep 0.5
  send "$mode" "$pid" "$do"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

run_knot() {
  local mode=$1 do=$2 module=""
  [ "$mode" = knot-onlinesign ] && module="    module: mod-onlinesign"
  rm -rf "$WORK/knot" "$WORK/kasp"
  mkdir -p "$WORK/knot" "$WORK/kasp"
  cat >"$WORK/knot.conf" <<EOC
server:
    listen: 127.0.0.1@$PORT
    rundir: "$WORK/knot"
    udp-workers: $(nproc)
log:
  - target: stderr
    any: warning
database:
    storage: "$WORK/kasp"
template:
  - id: default
    storage: "$WORK"
    zonefile-sync: -1
    journal-content: none
    semantic-checks: off
zone:
  - domain: $ZONE
    file: "$WORK/zone"
$module
EOC
  knotd -c "$WORK/knot.conf" >"$WORK/knot.$mode.log" 2>&1 &
  local pid=$!
  sleep 1
  send "$mode" "$pid" "$do"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

RESULTS=""
for m in exdns-unsigned:0 exdns-signed:1 exdns-cached:0 exdns-cached-signed:1; do
  line=$(run_exdns "${m%%:*}" "${m##*:}")
  echo "dnssec: $line (mode answers us_cpu_per_answer qps signed)" >&2
  RESULTS="$RESULTS$line"$'\n'
done
for m in knot-unsigned:0 knot-onlinesign:1; do
  line=$(run_knot "${m%%:*}" "${m##*:}")
  echo "dnssec: $line (mode answers us_cpu_per_answer qps signed)" >&2
  RESULTS="$RESULTS$line"$'\n'
done
us() { awk -v m="$1" '$1 == m {print $3}' <<<"$RESULTS"; }
{
  echo "# CPU per signed answer: exdns dnssec against Knot mod-onlinesign"
  echo
  echo "$(bench_machine) exdns $(bench_rev), Knot $(knot_version). Generated by \`bench/dnssec.sh\` ($QUERIES answers per mode over $NAMES names of one zone, one Python sender, 64 in flight; ECDSA P-256 keys; every name asked once before the measurement)."
  echo
  echo "| Mode | Answers | Signed answers | Server CPU per answer (µs) | qps (sender-bound) |"
  echo "|---|---|---|---|---|"
  while read -r mode got us_ qps signed; do
    [ -n "$mode" ] || continue
    echo "| $mode | $got | $signed | $us_ | $qps |"
  done <<<"$RESULTS"
  echo
  echo "- Signed answer, exdns / Knot mod-onlinesign: **$(ratio "$(us exdns-signed)" "$(us knot-onlinesign)")×** CPU per answer (target ≤ 1.0×)."
  echo "- Signed cache hit / unsigned cache hit (exdns): **$(ratio "$(us exdns-cached-signed)" "$(us exdns-cached)")×** (target ≤ 1.5×)."
  echo "- Signed / unsigned without \`cache\` (exdns): $(ratio "$(us exdns-signed)" "$(us exdns-unsigned)")×; Knot online signing / Knot unsigned: $(ratio "$(us knot-onlinesign)" "$(us knot-unsigned)")×."
} >"$OUT/dnssec.md"
cat "$OUT/dnssec.md"
