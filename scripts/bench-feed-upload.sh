#!/bin/bash
# Measures a 1,000,000-line feed upload under DNS load (numbers in docs/FEEDS-API.md).
#
#   cargo build --release --bin poolguard --example upload_latency
#   scripts/bench-feed-upload.sh            # DUR=15 QPS=20000 B=/tmp/feedapi-bench
#
# Writes a config, a 1,000-name feed, a local zone and two 1M-line lists into $B, starts one
# poolguard on 127.0.0.1 (stopped by its PID at the end), runs dnsperf in the background and
# times two uploads (create, then replace) with examples/upload_latency. Needs dnsperf, curl,
# python3.
set -u
W=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-/tmp/feedapi-bench}
DUR=${DUR:-15}
QPS=${QPS:-20000}
mkdir -p "$B/blocklists"
cd "$B" || exit 1
TOKEN=bench-feeds-token
python3 - "$TOKEN" <<'EOF'
import hashlib, os, sys
h = hashlib.sha256(sys.argv[1].encode()).hexdigest()
open('config.toml', 'w').write(f'''[dns]
listen = ["127.0.0.1:15353"]
workers = 1
[upstream]
servers = ["127.0.0.1:9"]
timeout_ms = 500
[blocking]
default_action = "sinkhole"
sinkhole_ipv4 = "0.0.0.0"
[[feeds]]
name = "base"
path = "blocklists/base.txt"
[[zones]]
name = "bench.test"
file = "bench.test.zone"
[api]
listen = "127.0.0.1:18080"
[[api.tokens]]
name = "bench"
role = "feeds"
sha256 = "{h}"
[store]
path = "data/pg.db"
''')
open('blocklists/base.txt', 'w').write(''.join(f'base{i}.blocked.example\n' for i in range(1000)))
open('bench.test.zone', 'w').write('$ORIGIN bench.test.\n$TTL 300\n'
    '@ IN SOA ns.bench.test. h.bench.test. 1 3600 600 86400 300\n@ IN NS ns.bench.test.\n'
    'ns IN A 10.0.0.53\n* IN A 10.0.0.1\n')
for name, prefix in (('1m.txt', 'pool'), ('1m-b.txt', 'new')):
    if not os.path.exists(name):
        with open(name, 'w') as f:
            f.writelines(f'{prefix}{i}.bench.test\n' for i in range(1000000))
with open('queries.txt', 'w') as f:
    for i in range(20000):
        f.write(f'base{i % 1000}.blocked.example A\n' if i % 2 else f'pool{(i * 37) % 1000000}.bench.test A\n')
EOF
rm -rf "$B/data" "$B/blocklists/.poolguard" "$B/blocklists/bench.txt"
"$W/target/release/poolguard" --config "$B/config.toml" > "$B/poolguard.log" 2>&1 &
PG=$!
echo "poolguard pid $PG"
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18080/healthz > /dev/null && break; sleep 0.1; done
dnsperf -s 127.0.0.1 -p 15353 -d "$B/queries.txt" -l "$DUR" -Q "$QPS" > "$B/dnsperf.log" 2>&1 &
DP=$!
sleep 3
LAT="$W/target/release/examples/upload_latency"
"$LAT" http://127.0.0.1:18080 $TOKEN 127.0.0.1:15353 bench "$B/1m.txt" pool999999.bench.test 0.0.0.0
sleep 2
echo "--- replace (second 1M upload over the first)"
"$LAT" http://127.0.0.1:18080 $TOKEN 127.0.0.1:15353 bench "$B/1m-b.txt" new999999.bench.test 0.0.0.0
wait $DP
grep -E "Queries sent|Queries completed|Queries lost|Response codes|Average Latency|Queries per second" "$B/dnsperf.log"
grep -E "policy compiled" "$B/poolguard.log" | tail -2
grep VmHWM "/proc/$PG/status"
kill -TERM $PG
wait $PG
echo "poolguard exit $?"
