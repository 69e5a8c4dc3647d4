# Shared parts of the benchmark scripts (bench/run.sh, bench/tcp.sh, bench/latency.sh,
# bench/dot.sh). Sourced, not run; the caller sets `set -euo pipefail` and the knobs it uses
# (NAMES for the authoritative data). See bench/README.md.

# bench_init: the repository root as working directory, OUT (report directory, default
# bench/results), WORK (a temporary directory removed at exit, with every background job
# stopped), LOAD (the load average before the run).
bench_init() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  OUT="${OUT:-bench/results}"
  mkdir -p "$OUT"
  WORK="$(mktemp -d)"
  trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
  LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
  CPU0=$(cpu_ticks)
}

# cpu_ticks: "steal total" jiffies of all CPUs so far (/proc/stat).
cpu_ticks() { awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t}' /proc/stat; }

# steal_pct: the share of CPU time the hypervisor gave to others since bench_init (a virtual
# machine's "steal"): on a shared host it is what makes one run's figures differ from the next.
steal_pct() {
  read -r s0 t0 <<<"$CPU0"
  read -r s1 t1 <<<"$(cpu_ticks)"
  awk -v s=$((s1 - s0)) -v t=$((t1 - t0)) 'BEGIN {printf "%.0f %%", t ? 100 * s / t : 0}'
}

# bench_need TAG HINT TOOL...: exits saying which tools are missing (cargo too, unless EXDNS_BIN
# names a binary). Installs nothing; HINT tells how.
bench_need() {
  local tag=$1 hint=$2 t missing=()
  shift 2
  for t in "$@"; do command -v "$t" >/dev/null || missing+=("$t"); done
  [ -n "${EXDNS_BIN:-}" ] || command -v cargo >/dev/null || missing+=(cargo)
  if ((${#missing[@]})); then
    echo "$tag: missing tools: ${missing[*]} ($hint)" >&2
    exit 1
  fi
}

# bench_exdns: EXDNS, the binary to benchmark: EXDNS_BIN, or a release build.
bench_exdns() {
  if [ -n "${EXDNS_BIN:-}" ]; then
    EXDNS="$EXDNS_BIN"
  else
    cargo build --release --quiet
    EXDNS="${CARGO_TARGET_DIR:-target}/release/exdns"
  fi
}

# bench_machine: the report's "Machine:" line.
bench_machine() {
  echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r); $(date -u '+%F %H:%M UTC'); load average before the run: $LOAD; CPU time stolen by the hypervisor during the run: $(steal_pct)."
}

bench_rev() { git rev-parse --short HEAD 2>/dev/null || echo '?'; }
dnsperf_version() { dnsperf -h 2>&1 | awk '/^Version/ {print $2}'; }
nsd_version() { nsd -v 2>&1 | awk 'NR==1 {print $3}'; }
knot_version() { knotd -V 2>&1 | awk '{print $NF}'; }
unbound_version() { unbound -V | awk 'NR==1 {print $2}'; }

# make_cert SNI: a private CA ($WORK/ca.pem) and a server certificate for SNI
# ($WORK/server.pem, key $WORK/server.key; leaf: CA:FALSE, SAN SNI), P-256 keys.
make_cert() {
  (
    cd "$WORK"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -keyout ca.key -out ca.pem -subj "/CN=exdns bench CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout server.key -out server.csr -subj "/CN=$1"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "subjectAltName=DNS:$1" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile server.ext -out server.pem
  ) >"$WORK/openssl.log" 2>&1 || { cat "$WORK/openssl.log"; exit 1; }
}

# ---- Scenario 1's data: one zone, NAMES names, the same for every server ----

ZONE=bench.test

# auth_data: NAMES names with one A each, as Ingresses ($WORK/manifests, for exdns's
# k8s_gateway) and as a zone file ($WORK/zone, NSD and Knot) and unbound local-data
# ($WORK/unbound-local.conf). exdns's apex is dns1.kube-system: its NS is
# dns1.kube-system.ZONE, whose glue comes from the Service kube-system/dns1; the zone file
# publishes the same NS, glue and SOA names. Queries ($WORK/queries, 100 000 lines): 90 %
# existing names (A), 5 % missing names (NXDOMAIN), 5 % the apex NS.
# Also sets LAST (the last name) and WANT (its address), which wait_ready asks for.
auth_data() {
  python3 - "$WORK" "$NAMES" "$ZONE" <<'PY'
import json, os, random, sys
work, n, zone = sys.argv[1], int(sys.argv[2]), sys.argv[3]
random.seed(7)
os.makedirs(f"{work}/manifests")
ns_name = f"dns1.kube-system.{zone}"
soa = f"{ns_name}. hostmaster.{ns_name}. 1 7200 1800 86400 60"
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
    z.write(f"@ 60 SOA {soa}\n")
    z.write(f"@ NS {ns_name}.\n{ns_name}. A 192.0.2.53\n")
    for i in range(n):
        z.write(f"host{i} A {ip(i)}\n")
with open(f"{work}/unbound-local.conf", "w") as u:
    u.write(f'    local-zone: "{zone}." static\n')
    u.write(f'    local-data: "{zone}. 60 IN SOA {soa}"\n')
    u.write(f'    local-data: "{zone}. 60 IN NS {ns_name}."\n')
    u.write(f'    local-data: "{ns_name}. 60 IN A 192.0.2.53"\n')
    for i in range(n):
        u.write(f'    local-data: "host{i}.{zone}. 60 IN A {ip(i)}"\n')
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
  LAST="host$((NAMES - 1)).$ZONE"
  WANT="10.$(((NAMES - 1) / 65536 % 256)).$(((NAMES - 1) / 256 % 256)).$(((NAMES - 1) % 256))"
}

# exdns_block KEY [DIRECTIVE...]: a Corefile server block serving the names through
# k8s_gateway from $WORK/manifests, with the given extra directive lines (e.g. `tls C K`).
# Bound to 127.0.0.1 as every other server here is: without `bind`, exdns (like CoreDNS) listens
# on the IPv6 wildcard, dual-stack, and each IPv4 query then takes the kernel's longer IPv6 path.
exdns_block() {
  local key=$1 d
  shift
  echo "$key {"
  echo "    bind 127.0.0.1"
  for d in "$@"; do echo "    $d"; done
  cat <<EOC
    k8s_gateway $ZONE {
        manifests $WORK/manifests
        apex dns1.kube-system
    }
}
EOC
}

# nsd_conf PORT [SERVER-LINE...]: NSD serving $WORK/zone on 127.0.0.1@PORT, one server
# process per core, with extra `server:` lines.
nsd_conf() {
  local port=$1 l
  shift
  cat <<EOC
server:
    ip-address: 127.0.0.1@$port
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
EOC
  for l in "$@"; do echo "    $l"; done
  cat <<EOC
remote-control:
    control-enable: no
zone:
    name: $ZONE
    zonefile: "$WORK/zone"
EOC
}

# knot_conf PORT [SERVER-LINE...]: Knot serving $WORK/zone on 127.0.0.1@PORT, one UDP worker
# per core, with extra `server:` lines. Its run directory is $WORK/knot.
knot_conf() {
  local port=$1 l
  shift
  mkdir -p "$WORK/knot"
  cat <<EOC
server:
    listen: 127.0.0.1@$port
    rundir: "$WORK/knot"
    udp-workers: $(nproc)
EOC
  for l in "$@"; do echo "    $l"; done
  cat <<EOC
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
}

# wait_ready NAME PORT LOG [DIG-OPTIONS]: waits until the server answers $LAST with $WANT
# (exdns answers SERVFAIL until its manifests are loaded); exits with its log if it never does.
wait_ready() {
  local i
  for i in $(seq 1 300); do
    # shellcheck disable=SC2086
    if [ "$(dig +short +tries=1 +time=1 ${4:-} @127.0.0.1 -p "$2" "$LAST" A 2>/dev/null)" = "$WANT" ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "bench: $1 did not answer $LAST" >&2
  cat "$3" >&2
  exit 1
}

# check_agree TAG SERVER... (each "name|port|dig options"): the answers should agree before
# their speed is compared (rcode, answer and additional records; TTLs and the authority section
# aside). A difference is printed and appended to DISAGREE, not fatal.
# DISAGREE_MD gets one Markdown list item per differing query, with each server's answer.
DISAGREE=""
DISAGREE_MD=""
check_agree() {
  local tag=$1 q s name port opts answers names="" md
  shift
  for s in "$@"; do names="$names${names:+, }${s%%|*}"; done
  for q in "$LAST A" "missing1.$ZONE A" "$ZONE NS"; do
    answers=$(for s in "$@"; do
      IFS='|' read -r name port opts <<<"$s"
      # shellcheck disable=SC2086
      dig +noall +comments +answer +additional $opts @127.0.0.1 -p "$port" $q |
        awk '/status:/ {sub(",", "", $6); print $6} /^[^;]/ && NF {print $1, $4, $5}' | sort | tr '\n' ' '
      echo
    done)
    if [ "$(sort -u <<<"$answers" | wc -l)" -ne 1 ]; then
      echo "$tag: WARNING: the servers answer '$q' differently ($names):" >&2
      echo "$answers" >&2
      DISAGREE="$DISAGREE '$q' ($names)"
      md=$(paste -d'|' <(for s in "$@"; do echo "${s%%|*}"; done) <(echo "$answers") |
        awk -F'|' '{sub(/ +$/, "", $2); printf "%s%s `%s`", (NR > 1 ? "; " : ""), $1, $2}')
      DISAGREE_MD="$DISAGREE_MD${DISAGREE_MD:+$'\n'}- \`$q\`: $md"
    fi
  done
}

# rss PID: resident memory in KiB of a process and its children (NSD forks its servers).
rss() {
  local total=0 p
  for p in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do
    total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# dnsperf_v LOG DNSPERF-ARGS...: one dnsperf run with -v (one line per query with its latency;
# dnsperf 2.10 has no histogram option); prints "qps avg_ms p50_ms p99_ms lost_pct", or
# "0 nan nan nan 100.00" (and the log on stderr) when dnsperf gave no summary.
dnsperf_v() {
  local log=$1
  shift
  dnsperf "$@" -v >"$log" 2>&1 || true
  python3 - "$log" <<'PY'
import sys
lat, qps, avg, lost = [], None, None, None
for line in open(sys.argv[1], errors="replace"):
    if line.startswith("> "):
        parts = line.split()
        if parts[1] != "T":  # "> T name type" is a timeout
            lat.append(float(parts[-1]))
    elif "Queries per second:" in line:
        qps = float(line.split()[-1])
    elif "Average Latency (s):" in line and avg is None:  # TCP/DoT: then connection latency
        avg = float(line.split()[3])
    elif "Queries lost:" in line:
        lost = float(line.split("(")[1].rstrip("%)\n"))
if qps is None or avg is None or lost is None:
    sys.stderr.write("".join(open(sys.argv[1], errors="replace").readlines()[-20:]))
    print("0 nan nan nan 100.00")
    sys.exit()
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] * 1000 if lat else float("nan")
print(f"{qps:.0f} {avg * 1000:.3f} {pct(0.50):.3f} {pct(0.99):.3f} {lost:.2f}")
PY
}

# best A B: the dnsperf_v result with the higher qps (A if B is empty).
best() {
  if [ -z "$1" ] || (($(awk '{print int($1)}' <<<"$2") > $(awk '{print int($1)}' <<<"$1"))); then
    echo "$2"
  else
    echo "$1"
  fi
}

# median_p99 RESULT...: the dnsperf_v result whose p99 (4th field) is the median of those given.
median_p99() {
  printf '%s\n' "$@" | sort -g -k4,4 | awk '{r[NR] = $0} END {print r[int((NR + 1) / 2)]}'
}

ratio() { python3 -c "a, b = $1, $2; print(f'{a / b:.2f}' if b else 'n/a')"; }
