#!/usr/bin/env bash
# How fast can PostgreSQL take the full query log? (issue 16: "the full log goes to
# PostgreSQL (partitioned by day, dropped by partition at retention) — choose by measurement")
#
# Starts a throw-away PostgreSQL as the test harness does (tests/common/postgres.rs: its own
# socket dir and port, fsync=off, run as `postgres` when root), creates the table a shared
# query log would need (daily partitions, the indexes `GET /api/v1/queries` pages and filters
# with), and loads ROWS rows spread over two days, RUNS times each way:
#   insert: INSERT … SELECT over generate_series, server-side: the ceiling of the shipper's
#           multi-row INSERT path (no wire, no client encoding)
#   copy:   psql's \copy of a CSV file: the COPY protocol over the socket
# Prints rows per second for each run. Usage: scripts/measure-pg-querylog.sh [ROWS] [RUNS]
set -euo pipefail
ROWS=${1:-1000000}
RUNS=${2:-3}
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
DIR=$(mktemp -d /tmp/pgqlog.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
AS=()
if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$DIR"; AS=(runuser -u postgres --); fi
cleanup() { "${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" stop -m immediate >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap cleanup EXIT
"${AS[@]}" "$BIN/initdb" -D "$DIR/data" -U poolguard --auth-local=trust -E UTF8 --locale=C --no-sync >/dev/null 2>&1
"${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -w -l "$DIR/server.log" \
    -o "-p $PORT -k $DIR -c listen_addresses='' -c fsync=off" start >/dev/null
PSQL=("${AS[@]}" "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U poolguard -d postgres)

# Two days from a fixed midnight, in milliseconds.
DAY0=1796601600000
schema() {
"${PSQL[@]}" <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS queries;
CREATE TABLE queries (
    node TEXT NOT NULL, id BIGINT NOT NULL, time_ms BIGINT NOT NULL,
    client INET NOT NULL, port INTEGER NOT NULL, transport TEXT NOT NULL,
    name TEXT NOT NULL, qtype TEXT NOT NULL, action TEXT NOT NULL,
    feed TEXT, rule TEXT, rcode TEXT NOT NULL, answer TEXT NOT NULL,
    latency_us INTEGER NOT NULL, upstream TEXT
) PARTITION BY RANGE (time_ms);
CREATE TABLE queries_d0 PARTITION OF queries FOR VALUES FROM ($DAY0) TO ($DAY0 + 86400000);
CREATE TABLE queries_d1 PARTITION OF queries FOR VALUES FROM ($DAY0 + 86400000) TO ($DAY0 + 172800000);
-- The /queries list pages newest first; filters by client and by name (suffix via reverse).
CREATE INDEX queries_page ON queries (time_ms DESC, node DESC, id DESC);
CREATE INDEX queries_client ON queries (client, time_ms);
CREATE INDEX queries_name ON queries (name text_pattern_ops, time_ms);
SQL
}

# The same rows both ways: 2,000 clients, 50,000 names, one in ten blocked.
ROW_SQL="SELECT 'node-a', g, $DAY0 + ((g - 1) * 172800000::bigint / $ROWS),
    ('10.' || (g % 8) || '.' || ((g / 8) % 250) || '.' || (g % 250))::inet, 1024 + g % 60000, 'udp',
    'host' || (g * 7919 % 50000) || '.example' || (g % 97) || '.test', 'A',
    CASE WHEN g % 10 = 0 THEN 'block' ELSE 'allow' END,
    CASE WHEN g % 10 = 0 THEN 'mining' END, NULL, 'NOERROR', '192.0.2.' || (g % 250),
    100 + g % 900, '192.0.2.53'
    FROM generate_series(1, $ROWS::bigint) AS g"
"${PSQL[@]}" -c "\\copy ($ROW_SQL) TO '$DIR/rows.csv' CSV"

rate() { awk -v n="$ROWS" -v s="$1" -v e="$2" 'BEGIN { printf "%.0f", n / ((e - s) / 1e9) }'; }
for run in $(seq 1 "$RUNS"); do
    schema
    s=$(date +%s%N); "${PSQL[@]}" -c "INSERT INTO queries $ROW_SQL"; e=$(date +%s%N)
    echo "run $run insert: $(rate "$s" "$e") rows/s"
    schema
    s=$(date +%s%N); "${PSQL[@]}" -c "\\copy queries FROM '$DIR/rows.csv' CSV"; e=$(date +%s%N)
    echo "run $run copy:   $(rate "$s" "$e") rows/s"
done
echo "size of $ROWS rows with indexes: $("${PSQL[@]}" -At -c "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'queries'::regclass")"
