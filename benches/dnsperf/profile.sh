#!/usr/bin/env bash
# profile.sh BIN CONFIG MIX LABEL: a 10 s saturating dnsperf run against poolguard (server on
# cpu 1, dnsperf on cpu 0, like ../shared/bench) with `perf record -g` for 6 s of it; prints qps,
# server CPU and qps per server core; the profile is $OUT/LABEL.data
# (`perf report -i ... --sort comm,dso`). CONFIG must listen on 127.0.0.1:25402 and forward to
# an nsd serving the bench zones (see docs/BENCHMARKS.md). Every wait is bounded.
set -u
bin=$1; cfg=$2; mix=$3; label=$4
d=${BENCH_DATA:-/tmp/poolguard-bench/data/N100000}
rm -f ${OUT:-/tmp/perf-prof}/pg-*.db*
taskset -c 1 "$bin" --config "$cfg" > ${OUT:-/tmp/perf-prof}/$label.log 2>&1 &
pid=$!
for i in $(seq 1 60); do dig +time=1 +tries=1 -p 25402 @127.0.0.1 campus.test >/dev/null 2>&1 && break; sleep 0.5; done
taskset -c 0 timeout 60 dnsperf -s 127.0.0.1 -p 25402 -d $d/warm-$mix.txt -n 1 -q 100 -t 2 > /dev/null 2>&1
taskset -c 0 timeout 60 dnsperf -s 127.0.0.1 -p 25402 -d $d/queries-$mix.txt -n 1 -q 100 -t 2 > /dev/null 2>&1
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
(sleep 2; timeout 6 perf record -F 499 -g -o ${OUT:-/tmp/perf-prof}/$label.data -p $pid > /dev/null 2>&1) &
perfpid=$!
taskset -c 0 timeout 60 dnsperf -s 127.0.0.1 -p 25402 -d $d/queries-$mix.txt -l 10 -c 4 -q 100 -T 1 -t 2 > ${OUT:-/tmp/perf-prof}/$label.run 2>&1
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
wait $perfpid
rss=$(grep VmHWM /proc/$pid/status)
kill -TERM $pid; wait $pid 2>/dev/null
q=$(grep "Queries per second" ${OUT:-/tmp/perf-prof}/$label.run | awk '{print $4}')
cpu=$(( (t1 - t0) ))
echo "$label: qps=$q server_cpu_ticks_10s=$cpu (cpu%=$((cpu/10))) qps/core=$(python3 -c "print(round($q/($cpu/1000)))") $rss lost=$(grep 'Queries lost' ${OUT:-/tmp/perf-prof}/$label.run | awk '{print $3}')"
