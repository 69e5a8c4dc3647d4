#!/usr/bin/env bash
# Instructions per query, measured with callgrind: a deterministic figure for comparing two
# builds (or two configurations) on a noisy machine, where qps ratios move by ±20 % between runs.
#
#   bench/profile.sh [BIN...]      # default: the release build
#   SCENARIO=hit bench/profile.sh  # auth (default): k8s_gateway, scenario 1's query mix;
#                                  # hit: cache hits (cache in front of k8s_gateway, names repeated)
#   COOKIE=1 bench/profile.sh      # every query carries a DNS Cookie option (a client cookie,
#                                  # dnsperf -E 10:<8 bytes>), so every reply gets a server cookie
#   COOKIE=echo bench/profile.sh   # every query carries the client cookie and the valid server
#                                  # cookie exdns gave it (asked with dig +cookie once it is up):
#                                  # a returning client's queries, verified and echoed
#   EDNS=1 bench/profile.sh        # every query carries an OPT record without options (dnsperf -e):
#                                  # the baseline that COOKIE=1 adds only the cookie to
#
# Each binary serves scenario 1's data (NAMES names from manifests) under valgrind; dnsperf sends
# QUERIES queries at a low rate (valgrind is ~50x slower), once to warm up and once measured
# (callgrind is toggled around the second pass with callgrind_control). Prints the instructions
# per query for each binary, and writes callgrind.out files to OUT (default /tmp/exdns-profile)
# for callgrind_annotate.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_init
bench_need bench/profile "apt-get install valgrind dnsperf" valgrind callgrind_control dnsperf
NAMES="${NAMES:-10000}"
QUERIES="${QUERIES:-20000}"
SCENARIO="${SCENARIO:-auth}"
# The queries' EDNS: none (dnsperf's default), an empty OPT (EDNS=1) or a client cookie (COOKIE=1;
# dnsperf then sends an OPT too). The tag names the output files and the report line.
opts=()
tag=$SCENARIO
CLIENT_COOKIE="${CLIENT_COOKIE:-0102030405060708}"
if [ "${COOKIE:-0}" = 1 ]; then
  opts=(-E "10:$CLIENT_COOKIE")
  tag=$SCENARIO.cookie
elif [ "${COOKIE:-0}" = echo ]; then
  tag=$SCENARIO.cookie-echo
elif [ "${EDNS:-0}" = 1 ]; then
  opts=(-e)
  tag=$SCENARIO.edns
fi
PROF="${PROF_OUT:-/tmp/exdns-profile}"
mkdir -p "$PROF"
bins=("$@")
if ((${#bins[@]} == 0)); then
  bench_exdns
  bins=("$EXDNS")
fi
auth_data
head -n "$QUERIES" "$WORK/queries" >"$WORK/q"
if [ "$SCENARIO" = hit ]; then
  # 1000 existing names, repeated: every query after the warm-up pass is a cache hit.
  grep '^host' "$WORK/queries" | sort -u >"$WORK/names.all"
  sed -n 1,1000p "$WORK/names.all" >"$WORK/names"
  for _ in $(seq $((QUERIES / 1000))); do cat "$WORK/names"; done >"$WORK/q"
fi
port=$((20000 + RANDOM % 20000))
extra=()
[ "$SCENARIO" = hit ] && extra=(cache)
exdns_block "$ZONE:$port" "${extra[@]}" >"$WORK/Corefile"

i=0
for bin in "${bins[@]}"; do
  i=$((i + 1))
  out="$PROF/callgrind.$tag.$i.out"
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
    "$bin" -conf "$WORK/Corefile" -quiet >"$WORK/exdns.$i.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    dig +time=1 +tries=1 -p "$port" @127.0.0.1 "$LAST" A +short 2>/dev/null | grep -q "$WANT" && break
    sleep 0.5
  done
  if [ "${COOKIE:-0}" = echo ]; then
    # This process's server cookie for the client cookie (its secret is its own).
    full=$(dig +time=2 +tries=1 -p "$port" @127.0.0.1 "$LAST" A +cookie="$CLIENT_COOKIE" |
      awk '/; COOKIE:/ {print $3; exit}')
    [ "${#full}" = 48 ] || { echo "bench/profile: no server cookie from $bin" >&2; exit 1; }
    opts=(-E "10:$full")
  fi
  dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/q" -n 1 -Q 2000 -c 1 -q 50 "${opts[@]}" >/dev/null
  rm -f "$out" "$out".*
  callgrind_control -i on "$pid" >/dev/null 2>&1
  dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/q" -n 1 -Q 2000 -c 1 -q 50 "${opts[@]}" >"$WORK/perf.$i" || true
  callgrind_control -d "$pid" >/dev/null 2>&1
  callgrind_control -i off "$pid" >/dev/null 2>&1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  done_q=$(awk '/Queries completed:/ {print $3}' "$WORK/perf.$i")
  # The measured pass is the dump (part 1); the rest of the run was not instrumented.
  ir=$(callgrind_annotate "$out.1" | awk '/PROGRAM TOTALS/ && !seen {gsub(",", "", $1); print $1; seen = 1}')
  echo "bench/profile: $tag $bin: $done_q queries, $((ir / done_q)) instructions per query ($out.1)"
done
