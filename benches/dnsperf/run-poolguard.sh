#!/usr/bin/env bash
# Launches poolguard for ../shared/bench: `--cmd 'benches/dnsperf/run-poolguard.sh {config}'`.
# In the harness's nolog variant (BENCH_QLOG=0) only hits are stored; in qlog every query is.
# POOLGUARD_DNSTAP=<unix socket>: also export every exchange as dnstap to that socket (the
# dnstap cost measurement of docs/EXPORT.md; start `fstrm_capture` on it first).
# POOLGUARD_KEA_LEASES=<lease4 file>: also follow that Kea lease file (the identity cost
# measurement of docs/BENCHMARKS.md, issue 15; make one with gen-kea-leases.py).
# POOLGUARD_PG_URL, POOLGUARD_PG_PASSWORD_FILE: fill in poolguard-postgres.toml.in (hits
# shipped to that PostgreSQL; docs/BENCHMARKS.md, issue 16).
set -euo pipefail
config=$1
here=$(cd "$(dirname "$0")" && pwd)
bin=${POOLGUARD_BIN:-$here/../../target/release/poolguard}
if [ "${BENCH_QLOG:-0}" = "0" ]; then
  sed -i 's/^log_queries = true/log_queries = false/' "$config"
fi
if [ -n "${POOLGUARD_PG_URL:-}" ]; then
  sed -i -e "s|@POOLGUARD_PG_URL@|$POOLGUARD_PG_URL|" \
    -e "s|@POOLGUARD_PG_PASSWORD_FILE@|${POOLGUARD_PG_PASSWORD_FILE:-}|" "$config"
fi
if [ -n "${POOLGUARD_DNSTAP:-}" ]; then
  printf '\n[[export.dnstap]]\nunix = "%s"\nselect = "all"\n' "$POOLGUARD_DNSTAP" >> "$config"
fi
if [ -n "${POOLGUARD_KEA_LEASES:-}" ]; then
  printf '\n[identity]\n[[identity.kea]]\npath = "%s"\n' "$POOLGUARD_KEA_LEASES" >> "$config"
fi
exec "$bin" --config "$config"
