#!/usr/bin/env bash
# Zone transfers out of a primary: exdns (k8s_gateway + transfer, NAMES Ingresses from a
# manifests directory), NSD and Knot (the same names from a zone file), in one run.
#   bench/xfr.sh                 # 100,000 names
#   NAMES=10000 bench/xfr.sh     # a quick run
# For each server: AXFR time (best of REPEAT, dig as the client, whole transfer received), the
# server's CPU time for it, its resident memory before and at its peak during the transfer
# (sampled every 10 ms), the messages and bytes sent; then the IXFR of one changed name (NSD
# 4.6 keeps no IXFR data for zone file changes: n/a). Report: results/xfr.md.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
NAMES="${NAMES:-100000}"
REPEAT="${REPEAT:-3}"
ZONE="${ZONE:-bench.example}"
bench_init
bench_need xfr "apt-get install nsd knot knot-dnsutils bind9-dnsutils python3" nsd knotd knotc dig python3
bench_exdns

PORT_EX="${PORT_EX:-15363}"
PORT_NSD="${PORT_NSD:-15364}"
PORT_KNOT="${PORT_KNOT:-15365}"

auth_data
exdns_block "$ZONE:$PORT_EX" "transfer {" "    to 127.0.0.0/8" "}" >"$WORK/Corefile"
nsd_conf "$PORT_NSD" >"$WORK/nsd.conf"
echo "    provide-xfr: 127.0.0.0/8 NOKEY" >>"$WORK/nsd.conf"
# Knot as the primary of a changing zone file: the journal keeps the differences for IXFR.
mkdir -p "$WORK/knot"
cat >"$WORK/knot.conf" <<EOC
server:
    listen: 127.0.0.1@$PORT_KNOT
    rundir: "$WORK/knot"
log:
  - target: stderr
    any: warning
database:
    storage: "$WORK/knot"
acl:
  - id: xfr
    address: 127.0.0.0/8
    action: transfer
template:
  - id: default
    storage: "$WORK"
    zonefile-sync: -1
    zonefile-load: difference
    journal-content: changes
    semantic-checks: off
zone:
  - domain: $ZONE
    file: "$WORK/zone"
    acl: xfr
EOC

"$EXDNS" -conf "$WORK/Corefile" -quiet >"$WORK/exdns.log" 2>&1 &
EX_PID=$!
nsd -d -c "$WORK/nsd.conf" >"$WORK/nsd.log" 2>&1 &
NSD_PID=$!
knotd -c "$WORK/knot.conf" >"$WORK/knot.log" 2>&1 &
KNOT_PID=$!
wait_ready exdns "$PORT_EX" "$WORK/exdns.log"
wait_ready nsd "$PORT_NSD" "$WORK/nsd.log"
wait_ready knot "$PORT_KNOT" "$WORK/knot.log"

# cpu_ms PID: user + system CPU time of a process and its children so far, in ms.
cpu_ms() {
  local total=0 p
  for p in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo $((total * 1000 / $(getconf CLK_TCK)))
}

# axfr NAME PORT PID: prints "seconds records messages bytes cpu_ms rss_before_kib rss_peak_kib"
# for the best of REPEAT transfers.
axfr() {
  local port=$2 pid=$3 best=""
  for _ in $(seq 1 "$REPEAT"); do
    local before peak t0 t1 c0 c1 out line
    before=$(rss "$pid")
    echo "$before" >"$WORK/peak"
    (while :; do r=$(rss "$pid"); p=$(cat "$WORK/peak"); [ "$r" -gt "$p" ] && echo "$r" >"$WORK/peak"; sleep 0.01; done) &
    local sampler=$!
    c0=$(cpu_ms "$pid")
    t0=$(date +%s.%N)
    out=$(dig +noall +stats +tries=1 +time=30 @127.0.0.1 -p "$port" "$ZONE" AXFR)
    t1=$(date +%s.%N)
    c1=$(cpu_ms "$pid")
    sleep 0.05
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    peak=$(cat "$WORK/peak")
    line=$(sed -n 's/.*XFR size: \([0-9]*\) records (messages \([0-9]*\), bytes \([0-9]*\)).*/\1 \2 \3/p' <<<"$out")
    [ -n "$line" ] || { echo "xfr: $1: no complete AXFR: $out" >&2; exit 1; }
    line="$(python3 -c "print(f'{$t1 - $t0:.3f}')") $line $((c1 - c0)) $before $peak"
    if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if ${line%% *} < ${best%% *} else 1)"; then
      best=$line
    fi
  done
  echo "$best"
}

declare -A AX
for s in "exdns:$PORT_EX:$EX_PID" "nsd:$PORT_NSD:$NSD_PID" "knot:$PORT_KNOT:$KNOT_PID"; do
  IFS=: read -r name port pid <<<"$s"
  AX[$name]=$(axfr "$name" "$port" "$pid")
  echo "xfr: $name AXFR: ${AX[$name]} (s records messages bytes cpu_ms rss_kib peak_kib)" >&2
done

# One name changes. exdns: the manifest (the serial follows); Knot: the zone file with the next
# serial, reloaded (it journals the difference).
serial() { dig +short @127.0.0.1 -p "$1" "$ZONE" SOA | awk '{print $3}'; }
EX_OLD=$(serial "$PORT_EX")
sleep 1.1
python3 - "$WORK/manifests/ingresses.json" <<'PY'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["items"][0]["status"]["loadBalancer"]["ingress"][0]["ip"] = "192.0.2.99"
json.dump(d, open(p + ".tmp", "w"))
PY
mv "$WORK/manifests/ingresses.json.tmp" "$WORK/manifests/ingresses.json"
sed -i 's/^\(@ 60 SOA .*\) 1 7200/\1 2 7200/; s/^host0 A .*/host0 A 192.0.2.99/' "$WORK/zone"
knotc -c "$WORK/knot.conf" zone-reload "$ZONE" >/dev/null
for _ in $(seq 1 300); do
  [ "$(serial "$PORT_EX")" != "$EX_OLD" ] && [ "$(serial "$PORT_KNOT")" = 2 ] && break
  sleep 0.1
done
sleep 0.5 # exdns's journal follows the serial within 200 ms
ixfr() {
  dig +noall +stats +answer @127.0.0.1 -p "$1" "$ZONE" "IXFR=$2" >"$WORK/ixfr.$3"
  sed -n 's/.*XFR size: \([0-9]*\) records (messages \([0-9]*\), bytes \([0-9]*\)).*/\1 \2 \3/p' "$WORK/ixfr.$3"
}
IX_EX=$(ixfr "$PORT_EX" "$EX_OLD" exdns)
IX_KNOT=$(ixfr "$PORT_KNOT" 1 knot)
echo "xfr: IXFR of one change: exdns $IX_EX, knot $IX_KNOT (records messages bytes)" >&2

row() {
  read -r s rec msg bytes cpu before peak <<<"${AX[$1]}"
  printf '| %s | %s | %s | %s | %s | %s | %s | %.1f | %.1f (+%.1f) |\n' "$1" "$s" "$(ratio "$s" "$(cut -d' ' -f1 <<<"${AX[knot]}")")" \
    "$rec" "$msg" "$bytes" "$cpu" "$(bc -l <<<"$before / 1024")" "$(bc -l <<<"$peak / 1024")" "$(bc -l <<<"($peak - $before) / 1024")"
}
{
  echo "# Zone transfers: exdns vs NSD and Knot as primaries"
  echo
  echo "$(bench_machine) exdns $(bench_rev), NSD $(nsd_version), Knot $(knot_version). Generated by \`bench/xfr.sh\`."
  echo
  echo "## AXFR of $NAMES names (best of $REPEAT; dig receives the whole zone)"
  echo
  echo "| Server | Time (s) | vs Knot | Records | Messages | Bytes | Server CPU (ms) | RSS before (MiB) | RSS peak during (MiB) |"
  echo "|---|---|---|---|---|---|---|---|---|"
  row exdns
  row nsd
  row knot
  echo
  echo "## IXFR of one changed name"
  echo
  echo "| Server | Records | Messages | Bytes |"
  echo "|---|---|---|---|"
  read -r r m b <<<"$IX_EX"
  echo "| exdns | $r | $m | $b |"
  echo "| nsd | n/a (NSD $(nsd_version) keeps no IXFR data for zone file changes) | | |"
  read -r r m b <<<"$IX_KNOT"
  echo "| knot | $r | $m | $b |"
  echo
  echo "exdns's IXFR, record by record:"
  echo
  echo '```'
  grep -v '^;' "$WORK/ixfr.exdns" | awk 'NF {print $1, $4, $5}'
  echo '```'
} >"$OUT/xfr.md"
cat "$OUT/xfr.md"
