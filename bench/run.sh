#!/usr/bin/env bash
# exdns benchmarks against comparison servers, side by side in one run (ratios are what count).
# Installs nothing: it checks its tools and says what is missing. See bench/README.md.
#   make bench                        # every scenario (this script and bench/dot.sh, then the k8s_scale test)
#   DURATION=5 NAMES=1000 bench/run.sh  # a quick run of this script only
#   EXDNS_BIN=path/to/exdns bench/run.sh  # benchmark a given binary (no cargo build)
#
# Scenario 1 (authoritative UDP): NAMES names in one zone; queries 90 % existing names (A),
# 5 % missing names (NXDOMAIN), 5 % the apex NS. exdns answers through k8s_gateway from a
# generated manifests directory (one Ingress per name); NSD and Knot serve the same names,
# SOA and NS (with glue) from a zone file. Each server is driven by dnsperf at full load, then
# at 50 % of the rate it reached (-Q). Latency percentiles come from dnsperf -v (one line per
# query with its latency; dnsperf 2.10 has no histogram option).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
NAMES="${NAMES:-10000}"
CLIENTS="${CLIENTS:-8}"
OUTSTANDING="${OUTSTANDING:-500}"
REPEAT="${REPEAT:-2}"
OUT=bench/results
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

missing=()
for t in dnsperf nsd knotd dig python3; do command -v "$t" >/dev/null || missing+=("$t"); done
[ -n "${EXDNS_BIN:-}" ] || command -v cargo >/dev/null || missing+=(cargo)
if ((${#missing[@]})); then
  echo "bench: missing tools: ${missing[*]} (apt-get install dnsperf nsd knot bind9-dnsutils python3)" >&2
  exit 1
fi

if [ -n "${EXDNS_BIN:-}" ]; then
  EXDNS="$EXDNS_BIN"
else
  cargo build --release --quiet
  EXDNS="${CARGO_TARGET_DIR:-target}/release/exdns"
fi

ZONE=bench.test
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
PORT_EX="${PORT_EX:-15353}"
PORT_NSD="${PORT_NSD:-15354}"
PORT_KNOT="${PORT_KNOT:-15355}"

# Data: NAMES names with one A each, as Ingresses (exdns manifests) and as a zone file (NSD,
# Knot). exdns's apex is dns1.kube-system: its NS is dns1.kube-system.ZONE, whose glue comes
# from the Service kube-system/dns1; the zone file publishes the same NS, glue and SOA names.
python3 - "$WORK" "$NAMES" "$ZONE" <<'PY'
import json, os, random, sys
work, n, zone = sys.argv[1], int(sys.argv[2]), sys.argv[3]
random.seed(7)
os.makedirs(f"{work}/manifests")
ns_name = f"dns1.kube-system.{zone}"
def ip(i):
    return f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
items = []
for i in range(n):
    host = f"host{i}.{zone}"
    items.append({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": f"host{i}", "namespace": f"team{i % 20}"},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": host, "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": f"web{i}", "port": {"number": 80}}}}]}}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip(i)}]}},
    })
with open(f"{work}/manifests/ingresses.json", "w") as f:
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
with open(f"{work}/manifests/services.json", "w") as f:
    json.dump({"apiVersion": "v1", "kind": "List", "items": [{
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "dns1", "namespace": "kube-system"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 53, "protocol": "UDP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.53"}]}},
    }]}, f)
with open(f"{work}/zone", "w") as z:
    z.write(f"$ORIGIN {zone}.\n$TTL 60\n")
    z.write(f"@ 60 SOA {ns_name}. hostmaster.{ns_name}. 1 7200 1800 86400 60\n")
    z.write(f"@ NS {ns_name}.\n{ns_name}. A 192.0.2.53\n")
    for i in range(n):
        z.write(f"host{i} A {ip(i)}\n")
with open(f"{work}/queries", "w") as q:
    for i in range(100000):
        r = random.random()
        if r < 0.90:
            q.write(f"host{random.randrange(n)}.{zone} A\n")
        elif r < 0.95:
            q.write(f"missing{i}.{zone} A\n")
        else:
            q.write(f"{zone} NS\n")
PY

cat >"$WORK/Corefile" <<EOC
$ZONE:$PORT_EX {
    k8s_gateway $ZONE {
        manifests $WORK/manifests
        apex dns1.kube-system
    }
}
EOC
cat >"$WORK/nsd.conf" <<EOC
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
    # Like Knot and exdns: no NS/glue added to positive answers, no response rate limiting
    # (every query comes from 127.0.0.1, which NSD's default RRL would throttle).
    minimal-responses: yes
    rrl-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: $ZONE
    zonefile: "$WORK/zone"
EOC
mkdir -p "$WORK/knot"
cat >"$WORK/knot.conf" <<EOC
server:
    listen: 127.0.0.1@$PORT_KNOT
    rundir: "$WORK/knot"
    udp-workers: $(nproc)
log:
  - target: stderr
    any: warning
database:
    storage: "$WORK/knot"
template:
  - id: default
    storage: "$WORK"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
  - domain: $ZONE
    file: "$WORK/zone"
EOC

"$EXDNS" -conf "$WORK/Corefile" -quiet >"$WORK/exdns.log" 2>&1 &
EX_PID=$!
nsd -d -c "$WORK/nsd.conf" >"$WORK/nsd.log" 2>&1 &
NSD_PID=$!
knotd -c "$WORK/knot.conf" >"$WORK/knot.log" 2>&1 &
KNOT_PID=$!

# Ready: the server answers the last name with its address (exdns answers SERVFAIL until its
# manifests are loaded).
last="host$((NAMES - 1)).$ZONE"
want="10.$(((NAMES - 1) / 65536 % 256)).$(((NAMES - 1) / 256 % 256)).$(((NAMES - 1) % 256))"
wait_ready() { # name port log
  for _ in $(seq 1 300); do
    if [ "$(dig +short +tries=1 +time=1 @127.0.0.1 -p "$2" "$last" A 2>/dev/null)" = "$want" ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "bench: $1 did not answer $last"; cat "$3"; exit 1
}
wait_ready exdns "$PORT_EX" "$WORK/exdns.log"
wait_ready nsd "$PORT_NSD" "$WORK/nsd.log"
wait_ready knot "$PORT_KNOT" "$WORK/knot.log"

# The answers should agree before their speed is compared (rcode, answer and additional
# records; TTLs and the authority section aside). A difference is reported, not fatal.
DISAGREE=""
for q in "$last A" "missing1.$ZONE A" "$ZONE NS"; do
  answers=$(for p in "$PORT_EX" "$PORT_NSD" "$PORT_KNOT"; do
    # shellcheck disable=SC2086
    dig +noall +comments +answer +additional @127.0.0.1 -p "$p" $q |
      awk '/status:/ {sub(",", "", $6); print $6} /^[^;]/ && NF {print $1, $4, $5}' | sort | tr '\n' ' '
    echo
  done)
  if [ "$(sort -u <<<"$answers" | wc -l)" -ne 1 ]; then
    echo "bench: WARNING: the servers answer '$q' differently (exdns, nsd, knot):" >&2
    echo "$answers" >&2
    DISAGREE="$DISAGREE '$q'"
  fi
done

# RSS in KiB of a process and its children (NSD forks its servers).
rss() {
  local total=0 p
  for p in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do
    total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# perf NAME PORT [MAXQPS]: one dnsperf run; prints "qps avg_ms p50_ms p99_ms lost_pct".
perf() {
  local name=$1 port=$2 limit=${3:-} log="$WORK/$1${3:+-half}.perf"
  dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries" -l "$DURATION" -c "$CLIENTS" -T 1 \
    -q "$OUTSTANDING" ${limit:+-Q "$limit"} -v >"$log" 2>&1
  python3 - "$log" <<'PY'
import sys
lat, qps, avg, lost = [], None, None, None
for line in open(sys.argv[1]):
    if line.startswith("> "):
        parts = line.split()
        if parts[1] != "T":  # "> T name type" is a timeout
            lat.append(float(parts[-1]))
    elif "Queries per second:" in line:
        qps = float(line.split()[-1])
    elif "Average Latency (s):" in line:
        avg = float(line.split()[3])
    elif "Queries lost:" in line:
        lost = float(line.split("(")[1].rstrip("%)\n"))
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] * 1000 if lat else float("nan")
print(f"{qps:.0f} {avg * 1000:.3f} {pct(0.50):.3f} {pct(0.99):.3f} {lost:.2f}")
PY
}

declare -A FULL HALF RSS IDLE
IDLE[exdns]=$(rss "$EX_PID")
IDLE[nsd]=$(rss "$NSD_PID")
IDLE[knot]=$(rss "$KNOT_PID")
for s in exdns:$PORT_EX:$EX_PID nsd:$PORT_NSD:$NSD_PID knot:$PORT_KNOT:$KNOT_PID; do
  IFS=: read -r name port pid <<<"$s"
  FULL[$name]=""
  for _ in $(seq 1 "$REPEAT"); do # best of REPEAT: other processes on the machine add noise
    r=$(perf "$name" "$port")
    if [ -z "${FULL[$name]}" ] || (($(awk '{print int($1)}' <<<"$r") > $(awk '{print int($1)}' <<<"${FULL[$name]}"))); then
      FULL[$name]=$r
    fi
  done
  max=$(awk '{print int($1)}' <<<"${FULL[$name]}")
  HALF[$name]=$(perf "$name" "$port" $((max / 2)))
  RSS[$name]=$(rss "$pid")
  echo "bench: $name full: ${FULL[$name]} | 50 %: ${HALF[$name]} (qps avg p50 p99 lost%)" >&2
done

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
q_ex=$(awk '{print $1}' <<<"${FULL[exdns]}")
q_nsd=$(awk '{print $1}' <<<"${FULL[nsd]}")
q_knot=$(awk '{print $1}' <<<"${FULL[knot]}")
{
  echo "# Authoritative UDP: $NAMES names — exdns (k8s_gateway from manifests) vs NSD and Knot"
  echo
  echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r); $(date -u '+%F %H:%M UTC'); load average before the run: $LOAD."
  echo "Servers and dnsperf share the machine's cores over loopback."
  echo
  echo "Load: dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ {print $2}'), ${DURATION} s per run, $CLIENTS clients, 1 thread, $OUTSTANDING queries outstanding;"
  echo "full load (best of $REPEAT runs), then 50 % of the rate that server reached at full load (\`-Q\`)."
  echo "Queries: 90 % existing names (A), 5 % missing names (NXDOMAIN), 5 % apex NS (with glue)."
  echo "exdns $(git rev-parse --short HEAD 2>/dev/null || echo '?'): \`k8s_gateway\` from a manifests directory of $NAMES Ingresses;"
  echo "NSD $(nsd -v 2>&1 | awk 'NR==1 {print $3}') ($(nproc) servers) and Knot $(knotd -V 2>&1 | awk '{print $NF}') ($(nproc) UDP workers) from a zone file with the same names."
  echo
  echo "| server | load | qps | avg latency (ms) | p50 (ms) | p99 (ms) | lost (%) | RSS idle → after load (MB) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  for name in exdns nsd knot; do
    read -r q a p50 p99 l <<<"${FULL[$name]}"
    idle_mb=$(awk -v k="${IDLE[$name]}" 'BEGIN {printf "%.1f", k * 1024 / 1e6}')
    rss_mb=$(awk -v k="${RSS[$name]}" 'BEGIN {printf "%.1f", k * 1024 / 1e6}')
    echo "| $name | full | $q | $a | $p50 | $p99 | $l | $idle_mb → $rss_mb |"
    read -r q a p50 p99 l <<<"${HALF[$name]}"
    echo "| $name | 50 % | $q | $a | $p50 | $p99 | $l | |"
  done
  echo
  echo "Max qps: exdns / NSD = **$(ratio "$q_ex" "$q_nsd")×**, exdns / Knot = **$(ratio "$q_ex" "$q_knot")×**."
  echo
  echo "Latency is measured by dnsperf from send to receive; at full load it is mostly queueing"
  echo "($OUTSTANDING queries in flight), at 50 % load it is the service time. RSS: once ready (idle) and after the runs (NSD: all its processes; MB = 10^6 bytes)."
  if [ -n "$DISAGREE" ]; then
    echo
    echo "**Warning:** the servers' answers differed for$DISAGREE (see the run's output)."
  fi
} | tee "$OUT/authoritative.md"

# Scenario 2 (forwarding over DoT) is its own script, bench/dot.sh; the servers above are
# stopped first so they do not share the cores with it.
kill "$EX_PID" "$NSD_PID" "$KNOT_PID" 2>/dev/null || true
wait "$EX_PID" "$NSD_PID" "$KNOT_PID" 2>/dev/null || true
EXDNS_BIN="$EXDNS" bench/dot.sh
