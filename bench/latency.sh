#!/usr/bin/env bash
# The latency curve of scenario 1 (authoritative UDP): resperf raises the offered load of each
# server — exdns (k8s_gateway from manifests), NSD and Knot, the same data and queries as
# bench/run.sh — from 0 to MAXQPS over RAMP seconds, without waiting for answers (open loop:
# unlike dnsperf's fixed number of outstanding queries, an overloaded server shows up as loss).
# Writes a plot of response rate and latency against offered load (latency.png, gnuplot) and a
# table (latency.md) with the highest load each server answers with less than 1 % loss.
# Installs nothing: it checks its tools and says what is missing. See bench/README.md.
#   bench/latency.sh                          # alone (bench/run.sh also calls it)
#   RAMP=10 NAMES=1000 bench/latency.sh       # a quick run
#   EXDNS_BIN=path/to/exdns bench/latency.sh  # benchmark a given binary (no cargo build)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
NAMES="${NAMES:-10000}"
RAMP="${RAMP:-30}"             # seconds from 0 to MAXQPS, per server
MAXQPS="${MAXQPS:-250000}"     # the offered load at the end of the ramp
CLIENTS="${CLIENTS:-8}"        # resperf -C: UDP sockets (source ports), as dnsperf -c in run.sh
INTERVAL="${INTERVAL:-0.5}"    # resperf -i: seconds per plot point
TIMEOUT="${TIMEOUT:-2}"        # resperf -t: an answer later than this counts as lost
LAT_MS="${LAT_MS:-10}"         # the latency bound of the table's second capacity figure
BUFSIZE="${BUFSIZE:-4096}"     # resperf -b (KiB): its sockets' buffers, so a burst of answers
                               # after a server's stall is not dropped by the client
bench_init
bench_need bench/latency "apt-get install dnsperf nsd knot gnuplot-nox bind9-dnsutils python3" \
  resperf nsd knotd gnuplot dig python3
bench_exdns

PORT_EX="${PORT_EX:-15381}"
PORT_NSD="${PORT_NSD:-15382}"
PORT_KNOT="${PORT_KNOT:-15383}"

auth_data
exdns_block "$ZONE:$PORT_EX" >"$WORK/Corefile"
nsd_conf "$PORT_NSD" >"$WORK/nsd.conf"
knot_conf "$PORT_KNOT" >"$WORK/knot.conf"

"$EXDNS" -conf "$WORK/Corefile" -quiet >"$WORK/exdns.log" 2>&1 &
nsd -d -c "$WORK/nsd.conf" >"$WORK/nsd.log" 2>&1 &
knotd -c "$WORK/knot.conf" >"$WORK/knot.log" 2>&1 &
wait_ready exdns "$PORT_EX" "$WORK/exdns.log"
wait_ready nsd "$PORT_NSD" "$WORK/nsd.log"
wait_ready knot "$PORT_KNOT" "$WORK/knot.log"
check_agree bench/latency "exdns|$PORT_EX" "nsd|$PORT_NSD" "knot|$PORT_KNOT"

# Each server's UDP sockets on its port and their receive buffers, as the server set them (`ss`
# shows the kernel's figure, twice what was asked): how many queries can queue (adding latency)
# before the kernel drops them.
udp_rcvbufs() { # port
  ss -Hulmn "sport = :$1" | grep -o 'rb[0-9]*' | sed 's/rb//' | sort -n | uniq -c |
    awk '{printf "%s%d × %.0f KiB", (NR > 1 ? ", " : ""), $1, $2 / 1024}'
}
declare -A RB
RB[exdns]=$(udp_rcvbufs "$PORT_EX")
RB[nsd]=$(udp_rcvbufs "$PORT_NSD")
RB[knot]=$(udp_rcvbufs "$PORT_KNOT")

# One ramp per server, one after the other (the others idle). -F 0: resperf never gives up when
# it falls behind its schedule (it catches up instead; the plot uses the rate it really sent).
for s in exdns:$PORT_EX nsd:$PORT_NSD knot:$PORT_KNOT; do
  IFS=: read -r name port <<<"$s"
  echo "bench/latency: $name: resperf ramp to $MAXQPS qps over $RAMP s" >&2
  resperf -s 127.0.0.1 -p "$port" -d "$WORK/queries" -R -m "$MAXQPS" -r "$RAMP" -C "$CLIENTS" \
    -i "$INTERVAL" -t "$TIMEOUT" -b "$BUFSIZE" -F 0 -P "$WORK/$name.plot" >"$WORK/$name.resperf" 2>&1 ||
    { cat "$WORK/$name.resperf" >&2; exit 1; }
done

# Per server: a data file for the plot (sent/s, responses/s, average latency ms; sorted by the
# rate sent, since resperf's catching up makes it go back and forth)
# and a summary line. "Max qps with < 1 % loss": the highest rate sent in an interval before the
# first 2 s window (judged from 2 s on) in which fewer than 99 % of the queries sent were
# answered (a window, not one interval: an answer can land in the interval after its query's,
# and a window's edge cuts off only the last few ms of answers). "Sender kept up": the
# highest target rate before resperf first sent less than 90 % of it (on a loaded machine the
# sender, sharing the cores with the server, falls behind).
python3 - "$WORK" "$RAMP" "$INTERVAL" "$LAT_MS" exdns nsd knot >"$WORK/summary" <<'PY'
import sys
work, ramp, interval, lat_ms = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
names = sys.argv[5:]
window = max(1, round(2 / interval))
for name in names:
    rows = []
    for line in open(f"{work}/{name}.plot"):
        if line.startswith("#") or not line.strip():
            continue
        t, target, sent, resp, fail, lat = (float(x) for x in line.split()[:6])
        if t <= ramp and sent > 0:
            rows.append((t, target, sent, resp, lat))
    with open(f"{work}/{name}.dat", "w") as d:
        for t, target, sent, resp, lat in sorted(rows, key=lambda r: r[2]):
            d.write(f"{sent:.0f} {resp:.0f} {lat * 1000:.4f}\n")
    ok, ok_lat = 0.0, float("nan")
    for i, (t, target, sent, resp, lat) in enumerate(rows):
        w = rows[max(0, i - window + 1) : i + 1]
        if i + 1 >= window and sum(r[3] for r in w) < 0.99 * sum(r[2] for r in w):
            break
        if sent > ok:
            ok, ok_lat = sent, lat * 1000
    fast = 0.0
    for i, (t, target, sent, resp, lat) in enumerate(rows):
        w = rows[max(0, i - window + 1) : i + 1]
        answered = sum(r[3] for r in w)
        mean = sum(r[3] * r[4] for r in w) / answered if answered else float("inf")
        if i + 1 >= window and (answered < 0.99 * sum(r[2] for r in w) or mean * 1000 > lat_ms):
            break
        fast = max(fast, sent)
    kept = 0.0
    for t, target, sent, resp, lat in rows:
        if sent < 0.9 * target:
            break
        kept = target
    stats = {}
    for line in open(f"{work}/{name}.resperf"):
        if ":" in line and line.startswith("  "):
            k, v = line.split(":", 1)
            stats[k.strip()] = v.split()[0] if v.split() else ""
    cut = "—"
    if any("outstanding queries" in l for l in open(f"{work}/{name}.resperf")) and rows:
        cut = f"{rows[-1][1]:.0f}"
    sent_all = int(stats.get("Queries sent", 0))
    lost_all = int(stats.get("Queries lost", 0))
    print(name, f"{ok:.0f}", f"{ok_lat:.3f}", f"{fast:.0f}", f"{float(stats.get('Maximum throughput', 0)):.0f}",
          stats.get("Lost at that point", "?"), sent_all,
          f"{100 * lost_all / sent_all:.2f}" if sent_all else "nan", f"{kept:.0f}", cut)
PY
cat "$WORK/summary" >&2

# The plot, against the offered load (the queries resperf really sent per second in each
# interval): responses per second on top, average latency (log scale, points only: neighbours
# on the x axis can be intervals far apart in time) below.
plot_lines() { # COLUMN STYLE
  local sep="" n c
  for n in exdns:d95f02:exdns nsd:1b9e77:NSD knot:7570b3:Knot; do
    IFS=: read -r name c label <<<"$n"
    printf '%s"%s" using 1:%s %s lc rgb "#%s" title "%s"' \
      "$sep" "$WORK/$name.dat" "$1" "$2" "$c" "$label"
    sep=", "
  done
}
gnuplot <<EOG
set terminal pngcairo size 1000,900 font "DejaVu Sans,11"
set output "$OUT/latency.png"
set multiplot layout 2,1 title "Authoritative UDP, $NAMES names: resperf, offered load 0 → $MAXQPS qps in $RAMP s (one server at a time, same run)"
set grid
set key top left
set xlabel "offered load: queries sent per second (in $INTERVAL s intervals)"
set format x "%.0s%c"
set format y "%.0s%c"
set xrange [0:*]
set yrange [0:*]
set ylabel "responses per second"
plot x with lines dt 2 lc rgb "#999999" title "every query answered", \
     $(plot_lines 2 "with linespoints pt 7 ps 0.5 lw 2")
set logscale y
set format y "%g"
set yrange [*:*]
set ylabel "average latency (ms, log scale)"
plot $(plot_lines 3 "with points pt 7 ps 0.7")
unset multiplot
EOG

declare -A S
while read -r name rest; do S[$name]=$rest; done <"$WORK/summary"
okq() { awk '{print $1}' <<<"${S[$1]}"; }
fastq() { awk '{print $3}' <<<"${S[$1]}"; }
label() { case $1 in nsd) echo NSD ;; knot) echo Knot ;; *) echo "$1" ;; esac; }
{
  echo "# Latency curve, authoritative UDP: $NAMES names — exdns vs NSD and Knot under a rising load"
  echo
  bench_machine
  echo "Servers and resperf share the machine's cores over loopback."
  echo
  echo "Load: resperf $(dnsperf_version) (\`-m $MAXQPS -r $RAMP -C $CLIENTS -i $INTERVAL -t $TIMEOUT -b $BUFSIZE -F 0\`): the offered load rises linearly from 0 to $MAXQPS qps"
  echo "in $RAMP s, open loop (queries are sent on schedule whether or not answers came back), one server after the other."
  echo "Data and queries as in scenario 1 (\`authoritative.md\`): exdns $(bench_rev) with \`k8s_gateway\` from manifests, NSD $(nsd_version) and Knot $(knot_version) from a zone file."
  echo
  echo "![response rate and latency against offered load](latency.png)"
  echo
  echo "| server | max qps with < 1 % loss | avg latency there (ms) | exdns / server | max qps with < 1 % loss and < $LAT_MS ms | exdns / server |"
  echo "|---|---:|---:|---:|---:|---:|"
  for n in exdns nsd knot; do
    read -r ok lat fast _ <<<"${S[$n]}"
    r=$(ratio "$(okq exdns)" "$ok")
    rf=$(ratio "$(fastq exdns)" "$fast")
    [ "$n" = exdns ] && r="" rf=""
    echo "| $(label "$n") | $ok | $lat | ${r:+$r×} | $fast | ${rf:+$rf×} |"
  done
  echo
  echo "- **Max qps with < 1 % loss**: the highest rate sent in one $INTERVAL s interval before the first 2 s window in which"
  echo "  fewer than 99 % of the queries sent were answered. **And < $LAT_MS ms**: the same, stopping also at the first window"
  echo "  whose average latency is above $LAT_MS ms (a server that queues instead of dropping keeps its loss low while its latency grows)."
  echo "- Latency: resperf's average per interval over the answered queries; answers later than $TIMEOUT s count as lost."
  echo
  echo "| server | resperf max throughput (qps) | lost at that point | queries sent | lost overall (%) | resperf kept up to (qps) | ramp cut at (qps) | UDP receive buffers |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
  for n in exdns nsd knot; do
    read -r _ _ _ max lostmax sent lost kept cut <<<"${S[$n]}"
    echo "| $(label "$n") | $max | $lostmax | $sent | $lost | $kept | $cut | ${RB[$n]} |"
  done
  echo
  echo "- **resperf max throughput**: the most responses in one interval (resperf's own figure, whatever the loss then)."
  echo "- **Kept up to**: the offered load up to which resperf sent at least 90 % of its schedule; past it the sender itself"
  echo "  (sharing the cores with the server) is a limit too, and it catches up in bursts. The plot's x axis is the rate really"
  echo "  sent in each interval (points sorted by it), so a burst shows as a point further right, not as a higher schedule."
  echo "- **Ramp cut at**: resperf stops sending once 65 536 queries are unanswered (well past the server's capacity); \`—\`:"
  echo "  the ramp ran to its end."
  echo "- **UDP receive buffers**: the server's sockets on its port as the kernel reports them (twice what the server asked"
  echo "  for); a large buffer queues a burst (latency), a small one drops it (loss)."
  if [ -n "$DISAGREE" ]; then
    echo
    echo "**Warning:** the servers' answers differ (rcode, answer and additional records):"
    echo "$DISAGREE_MD"
  fi
} | tee "$OUT/latency.md"
