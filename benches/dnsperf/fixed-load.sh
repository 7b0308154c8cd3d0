#!/usr/bin/env bash
# CPU per answered query at a fixed load, dnstap off against on: issue 19's "qps per core"
# measured where the saturating harness (../shared/bench) is too noisy to show a few per cent
# (docs/EXPORT.md, "Cost"). poolguard runs alone on cpu 1; dnsperf, at a fixed rate below
# saturation, and the dnstap receiver (`fstrm_capture` writing to a file) on cpu 0. Two CPU
# figures per run, each divided by the queries answered: cpu 1's busy time from /proc/stat
# (user, system, irq, softirq: everything its core did, including the kernel's packet work
# for poolguard's sockets, so the "per core" of qps per core), and poolguard's own threads'
# run time from /proc/<pid>/task/*/schedstat (process context only).
#
#   benches/dnsperf/fixed-load.sh <poolguard binary> [rounds] [qps] [seconds]
#
# The queries are the blocked mix (every query a listed name or a subdomain of one: no
# upstream), the mix where dnstap's share of the work is largest. Each round runs off then on,
# the order swapped every round; one line per run and the mean per variant at the end.
# Needs: dnsperf, fstrm-bin (`fstrm_capture`), util-linux (`taskset`). Everything listens on
# 127.0.0.1; every process started here is stopped by its PID.
set -euo pipefail
bin=${1:?usage: fixed-load.sh <poolguard binary> [rounds] [qps] [seconds]}
rounds=${2:-4}
qps=${3:-100000}
secs=${4:-10}
port=${FIXED_LOAD_PORT:-25363}
here=$(cd "$(dirname "$0")" && pwd)
for tool in dnsperf:dnsperf fstrm_capture:fstrm-bin taskset:util-linux; do
  command -v "${tool%%:*}" >/dev/null || { echo "missing ${tool%%:*}: apt-get install ${tool#*:}" >&2; exit 1; }
done
work=$(mktemp -d /tmp/pg-fixed-load.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# 100 000 listed domains; queries: each listed name or a subdomain of it, shuffled.
python3 - "$work" <<'EOF'
import random, sys
work = sys.argv[1]
rng = random.Random(19)
names = [f"pool-{i}.xmr-mine{i % 97}.test" for i in range(100_000)]
with open(f"{work}/blocklist.txt", "w") as f:
    f.write("\n".join(names) + "\n")
with open(f"{work}/queries.txt", "w") as f:
    for i in range(100_000):
        n = rng.choice(names)
        f.write((f"w{i % 9}.{n}" if i % 2 else n) + " A\n")
EOF

# Nanoseconds every thread of `pid` has run.
cpu_ns() {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'
}

# Nanoseconds cpu 1 has been busy (user, nice, system, irq, softirq, steal).
core_ns() {
  awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu1" {printf "%.0f", ($2 + $3 + $4 + $7 + $8 + $9) * 1e9 / hz}' /proc/stat
}

# One run: prints "<variant> <answered> <core ns per query> <process ns per query>".
run() {
  local variant=$1 dir="$work/$1" sock="$work/dnstap.sock"
  mkdir -p "$dir"
  sed -e "s|{port}|$port|" -e "s|{upstream}|127.0.0.1:9|" \
      -e "s|{blocklist_file}|$work/blocklist.txt|" -e "s|{workdir}|$dir|" \
      -e 's/^log_queries = true/log_queries = false/' \
      "$here/poolguard.toml.in" > "$dir/config.toml"
  local cap=""
  if [ "$variant" = on ]; then
    rm -f "$sock"
    taskset -c 0 fstrm_capture -t protobuf:dnstap.Dnstap -u "$sock" -w "$dir/capture.fstrm" \
      >"$dir/capture.log" 2>&1 &
    cap=$!
    pids+=("$cap")
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
    [ -S "$sock" ] || { echo "fstrm_capture did not listen" >&2; exit 1; }
    printf '\n[[export.dnstap]]\nunix = "%s"\nselect = "all"\n' "$sock" >> "$dir/config.toml"
  fi
  taskset -c 1 "$bin" --config "$dir/config.toml" >"$dir/poolguard.log" 2>&1 &
  local pg=$!
  pids+=("$pg")
  local ready=""
  for _ in $(seq 200); do
    if echo "pool-1.xmr-mine1.test A" | dnsperf -s 127.0.0.1 -p "$port" -n 1 -t 1 2>/dev/null \
        | grep -q "Queries completed: *1 "; then ready=1; break; fi
    sleep 0.1
  done
  [ -n "$ready" ] || { echo "poolguard did not answer; see $dir/poolguard.log" >&2; cat "$dir/poolguard.log" >&2; exit 1; }
  # Warm-up: one pass of the file.
  taskset -c 0 dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -n 1 -c 4 -q 100 >/dev/null
  local before after core0 core1 out answered
  before=$(cpu_ns "$pg")
  core0=$(core_ns)
  out=$(taskset -c 0 dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -Q "$qps" -l "$secs" -c 4 -q 100)
  core1=$(core_ns)
  after=$(cpu_ns "$pg")
  answered=$(echo "$out" | awk '/Queries completed:/ {print $3}')
  kill "$pg"; wait "$pg" 2>/dev/null || true
  # The capture is ~300 MB a run at 100,000 qps: not kept.
  if [ -n "$cap" ]; then kill "$cap"; wait "$cap" 2>/dev/null || true; rm -f "$dir/capture.fstrm"; fi
  echo "$variant $answered $(( (core1 - core0) / answered )) $(( (after - before) / answered ))"
}

results=()
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="off on"; else order="on off"; fi
  for v in $order; do
    line=$(run "$v")
    echo "round $r: $line (variant, answered, core ns/query, process ns/query)" >&2
    results+=("$line")
  done
done
printf '%s\n' "${results[@]}" | awk -v q="$qps" -v s="$secs" '
  { n[$1]++; core[$1] += $3; proc[$1] += $4; if ($2 < 0.98 * q * s) short[$1]++ }
  END {
    for (v in n) printf "%s: %d runs, mean %.0f ns per query on the core, %.0f in the process%s\n",
      v, n[v], core[v] / n[v], proc[v] / n[v],
      (short[v] ? sprintf(" (%d runs answered < 98%% of the load)", short[v]) : "")
    if (n["off"] && n["on"])
      printf "on / off per query: core %.3f, process %.3f\n",
        (core["on"] / n["on"]) / (core["off"] / n["off"]), (proc["on"] / n["on"]) / (proc["off"] / n["off"])
  }'
