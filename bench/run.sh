#!/usr/bin/env bash
# exdns benchmarks against comparison servers, side by side in one run (ratios are what count).
# Installs nothing: it checks its tools and says what is missing.
#   make bench                 # all scenarios
#   DURATION=5 make bench      # shorter runs
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
NAMES="${NAMES:-10000}"
OUT=bench/results
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

missing=()
for t in dnsperf nsd cargo; do command -v "$t" >/dev/null || missing+=("$t"); done
if ((${#missing[@]})); then
  echo "bench: missing tools: ${missing[*]} (apt-get install dnsperf nsd)" >&2
  exit 1
fi

cargo build --release --quiet
EXDNS="${CARGO_TARGET_DIR:-target}/release/exdns"

ZONE=bench.test
PORT_EX=15353
PORT_NSD=15354

# Data: NAMES names with one A each; the same data as a hosts file (exdns) and a zone file (NSD).
python3 - "$WORK" "$NAMES" "$ZONE" <<'PY'
import sys, random
work, n, zone = sys.argv[1], int(sys.argv[2]), sys.argv[3]
random.seed(7)
names = [f"host{i}.{zone}" for i in range(n)]
with open(f"{work}/hosts", "w") as h, open(f"{work}/zone", "w") as z:
    z.write(f"$ORIGIN {zone}.\n$TTL 60\n@ SOA ns1.{zone}. hostmaster.{zone}. 1 7200 1800 86400 60\n@ NS ns1.{zone}.\nns1 A 192.0.2.1\n")
    for i, name in enumerate(names):
        ip = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
        h.write(f"{ip} {name}\n")
        z.write(f"{name}. A {ip}\n")
with open(f"{work}/queries", "w") as q:
    for i in range(100000):
        r = random.random()
        if r < 0.95:
            q.write(f"{random.choice(names)} A\n")
        else:
            q.write(f"missing{i}.{zone} A\n")
PY

cat > "$WORK/Corefile" <<EOC
$ZONE:$PORT_EX {
    hosts $WORK/hosts $ZONE {
        ttl 60
        reload 0
    }
}
EOC
cat > "$WORK/nsd.conf" <<EOC
server:
    ip-address: 127.0.0.1@$PORT_NSD
    server-count: $(nproc)
    zonesdir: "$WORK"
    pidfile: "$WORK/nsd.pid"
    database: ""
    username: ""
    xfrdfile: "$WORK/xfrd.state"
    zonelistfile: "$WORK/zone.list"
    verbosity: 0
remote-control:
    control-enable: no
zone:
    name: $ZONE
    zonefile: "$WORK/zone"
EOC

"$EXDNS" -conf "$WORK/Corefile" -quiet >"$WORK/exdns.log" 2>&1 &
EX_PID=$!
nsd -d -c "$WORK/nsd.conf" >"$WORK/nsd.log" 2>&1 &
sleep 2
dig +short @127.0.0.1 -p $PORT_EX host1.$ZONE A >/dev/null || { echo "exdns did not start"; cat "$WORK/exdns.log"; exit 1; }
dig +short @127.0.0.1 -p $PORT_NSD host1.$ZONE A >/dev/null || { echo "nsd did not start"; cat "$WORK/nsd.log"; exit 1; }

perf() { # name port
  dnsperf -s 127.0.0.1 -p "$2" -d "$WORK/queries" -l "$DURATION" -c 8 -T 1 -q 500 >"$WORK/$1.perf" 2>&1
  local qps lat lost
  qps=$(awk '/Queries per second/ {print $4}' "$WORK/$1.perf")
  lat=$(awk '/Average Latency/ {print $4}' "$WORK/$1.perf")
  lost=$(awk '/Queries lost/ {print $3}' "$WORK/$1.perf")
  echo "$1 $qps $lat $lost"
}
RES_EX=$(perf exdns $PORT_EX)
RES_NSD=$(perf nsd $PORT_NSD)
RSS_EX=$(awk '/VmRSS/ {print $2}' /proc/$EX_PID/status)

read -r _ q_ex l_ex lost_ex <<<"$RES_EX"
read -r _ q_nsd l_nsd lost_nsd <<<"$RES_NSD"
RATIO=$(python3 -c "print(f'{float(\"$q_ex\")/float(\"$q_nsd\"):.2f}')")
{
  echo "# Authoritative UDP, $NAMES names (hosts data vs NSD zone file)"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); $(date -u +%F); dnsperf ${DURATION}s, 8 clients, 95% hits / 5% NXDOMAIN."
  echo
  echo "| server | qps | avg latency (s) | lost | RSS (KiB) |"
  echo "|---|---|---|---|---|"
  echo "| exdns | $q_ex | $l_ex | $lost_ex | $RSS_EX |"
  echo "| nsd | $q_nsd | $l_nsd | $lost_nsd | |"
  echo
  echo "exdns / NSD = **${RATIO}×**"
} | tee "$OUT/authoritative.md"
