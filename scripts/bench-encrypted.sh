#!/bin/bash
# DoT and DoH queries per second, poolguard against Unbound in the same run (numbers in
# docs/BENCHMARKS.md, "Encrypted DNS").
#
#   cargo build --release --bin poolguard
#   scripts/bench-encrypted.sh              # DUR=8 B=/tmp/encrypted-bench
#
# Everything on 127.0.0.1, stopped by PID at the end. One worker / one thread each (so the
# numbers are per core), the same test certificate (openssl), and the same upstream for the
# cached name: a third process (Unbound, authoritative for bench.test from local-data).
# For each server: dnsperf -m dot and h2load DoH (POST and GET) for a blocked name and a cached
# name, DUR seconds each with 16 connections; the server's CPU seconds over the run come from
# /proc/PID/stat, so "per core" = queries / CPU seconds. The TLS handshake cost is
# `openssl s_time -new` (full TLS 1.3 handshakes, one after another) for DUR seconds, with the
# server's CPU per handshake. Needs dnsperf (>= 2.10 for -m dot), h2load (nghttp2-client),
# unbound (built with libnghttp2 for https-port), openssl, bc, basenc (coreutils).
set -u
W=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-/tmp/encrypted-bench}
DUR=${DUR:-8}
CLIENTS=${CLIENTS:-16}
mkdir -p "$B/blocklists"
cd "$B" || exit 1
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

# A test CA and a server certificate for 127.0.0.1 (P-256, as a campus ACME cert would be).
if [ ! -f server.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
    -out ca.pem -days 2 -subj "/CN=bench CA" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:dns.bench.test\n' > server.ext
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
    -out server.csr -subj "/CN=dns.bench.test" 2>/dev/null
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
    -days 2 -extfile server.ext 2>/dev/null
fi

# What both Unbound instances share: one thread, foreground, no chroot or privilege drop.
COMMON="  num-threads: 1
  use-syslog: no
  logfile: \"\"
  chroot: \"\"
  username: \"\"
  directory: \"$B\"
  pidfile: \"\"
  do-daemonize: no
  access-control: 127.0.0.0/8 allow"

cat > upstream.conf <<EOF
server:
  interface: 127.0.0.1@15400
$COMMON
  local-zone: "bench.test." static
  local-data: "www.bench.test. 3600 IN A 10.0.0.1"
EOF

cat > unbound.conf <<EOF
server:
  interface: 127.0.0.1@15854
  interface: 127.0.0.1@15444
  tls-port: 15854
  https-port: 15444
  tls-service-key: "$B/server.key"
  tls-service-pem: "$B/server.pem"
$COMMON
  incoming-num-tcp: 1024
  do-not-query-localhost: no
  local-zone: "blocked.example." redirect
  local-data: "blocked.example. 300 IN A 0.0.0.0"
forward-zone:
  name: "bench.test."
  forward-addr: 127.0.0.1@15400
EOF

cat > poolguard.toml <<EOF
[dns]
listen = ["127.0.0.1:15353"]
workers = 1
rate_limit_qps = 0
[dns.tls]
listen = ["127.0.0.1:15853"]
name = "dns.bench.test"
cert_file = "server.pem"
key_file = "server.key"
[dns.https]
listen = ["127.0.0.1:15443"]
name = "dns.bench.test"
cert_file = "server.pem"
key_file = "server.key"
[upstream]
servers = ["127.0.0.1:15400"]
[blocking]
default_action = "sinkhole"
sinkhole_ipv4 = "0.0.0.0"
[[feeds]]
name = "mining"
path = "blocklists/mining.txt"
EOF
echo blocked.example > blocklists/mining.txt
echo "blocked.example A" > q-blocked.txt
echo "www.bench.test A" > q-cached.txt

unbound -d -c upstream.conf > upstream.log 2>&1 & PIDS+=($!)
unbound -d -c unbound.conf > unbound.log 2>&1 & UB=$!; PIDS+=($UB)
"$W/target/release/poolguard" --config poolguard.toml > poolguard.log 2>&1 & PG=$!; PIDS+=($PG)
for _ in $(seq 1 100); do
  dig +short +time=1 +tries=1 @127.0.0.1 -p 15353 www.bench.test > /dev/null 2>&1 && break
  sleep 0.1
done

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)

# run NAME PID PORT MODE QUERIES [extra dnsperf args]: prints qps, qps per CPU second.
run() {
  local name=$1 pid=$2 port=$3 mode=$4 file=$5; shift 5
  local before after out qps used
  before=$(cpu "$pid")
  out=$(dnsperf -m "$mode" -s 127.0.0.1 -p "$port" -d "$file" -l "$DUR" -c "$CLIENTS" -q 200 "$@" 2>&1)
  after=$(cpu "$pid")
  qps=$(echo "$out" | awk '/Queries per second/ {print $4}')
  lost=$(echo "$out" | awk '/Queries lost/ {print $3}')
  used=$(echo "($after - $before) / $tck" | bc -l)
  printf '%-9s %-10s %-8s qps %10.0f  cpu %5.2f s  per-core %10.0f  lost %s\n' \
    "$name" "$mode" "$(basename "$file" .txt)" "$qps" "$used" \
    "$(echo "$qps * $DUR / ($used + 0.0001)" | bc -l)" "$lost"
}

# DoH through h2load (Debian nghttp2-client), the same HTTP/2 load tool for both servers:
# dnsperf 2.10's DoH keeps one response buffer per connection and loses answers when a server
# interleaves the frames of several streams (as hyper's h2 does; Unbound writes each whole),
# so its DoH numbers say more about dnsperf than about either server.
# doh NAME PID PORT QUERYFILE METHOD: prints req/s and per CPU second.
doh() {
  local name=$1 pid=$2 port=$3 wire=$4 method=$5 before after out rps used ok
  local url="https://127.0.0.1:$port/dns-query"
  local args=(-D "$DUR" -c "$CLIENTS" -m 10 -t 1)
  if [ "$method" = get ]; then
    url="$url?dns=$(basenc --base64url -w0 < "$wire" | tr -d =)"
  else
    args+=(-d "$wire" -H "content-type: application/dns-message")
  fi
  before=$(cpu "$pid")
  out=$(h2load "${args[@]}" "$url" 2>&1)
  after=$(cpu "$pid")
  rps=$(echo "$out" | awk '/^finished in/ {print $4}')
  ok=$(echo "$out" | awk '/^status codes:/ {print $3}')
  used=$(echo "($after - $before) / $tck" | bc -l)
  printf '%-9s %-10s %-8s qps %10.0f  cpu %5.2f s  per-core %10.0f  2xx %s\n' \
    "$name" "doh-$method" "$(basename "$wire" .bin)" "$rps" "$used" \
    "$(echo "$rps * $DUR / ($used + 0.0001)" | bc -l)" "$ok"
}
# The wire-format queries (ID 0, as RFC 8484 §4.1 asks of DoH clients).
python3 - <<'PY'
import struct
for name, qname in (("blocked", "blocked.example"), ("cached", "www.bench.test")):
    q = struct.pack(">HHHHHH", 0, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in qname.split(".")) + b"\0"
    open(f"q-{name}.bin", "wb").write(q + struct.pack(">HH", 1, 1))
PY

dig +short @127.0.0.1 -p 15353 www.bench.test > /dev/null  # warm poolguard's cache
for name in blocked cached; do
  run poolguard $PG 15853 dot q-$name.txt
  run unbound   $UB 15854 dot q-$name.txt
  for method in post get; do
    doh poolguard $PG 15443 q-$name.bin $method
    doh unbound   $UB 15444 q-$name.bin $method
  done
done

# Full handshakes, one after another (TLS 1.3, P-256 certificate, X25519).
hs() {
  local name=$1 pid=$2 port=$3 before after out n used
  before=$(cpu "$pid")
  out=$(openssl s_time -connect 127.0.0.1:"$port" -new -time "$DUR" -CAfile ca.pem 2>&1)
  after=$(cpu "$pid")
  n=$(echo "$out" | awk '/connections in [0-9.]+s/ {print $1; exit}')
  used=$(echo "($after - $before) / $tck" | bc -l)
  printf '%-9s handshakes %6s in %ss  server cpu per handshake %.3f ms\n' "$name" "$n" "$DUR" \
    "$(echo "$used * 1000 / ($n + 0.0001)" | bc -l)"
}
hs poolguard $PG 15853
hs unbound $UB 15854
