#!/usr/bin/env bash
# Idle resident memory of poolguard with the staff console on and off (docs/CONSOLE.md).
#
#   scripts/console-rss.sh target/release/poolguard [runs]
#
# Starts the binary on the shipped config (DNS on 127.0.0.1:15353, API on 127.0.0.1:18080,
# [pools] off so no upstream traffic, one viewer token) in a temp dir, waits for /healthz, lets
# it settle for 3 s and reads VmRSS; then (console on) signs in and opens every page once, or
# (console off) makes the same API reads directly, settles again and reads VmRSS once more.
# Prints one line per run.
set -euo pipefail
bin=$(realpath "$1")
runs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
token=rss-viewer-token
sha=$(printf %s "$token" | sha256sum | cut -d' ' -f1)

config() { # $1 = true|false
  python3 - "$root/config.toml" "$1" "$sha" <<'PY'
import sys
s = open(sys.argv[1]).read()
s = s.replace('listen = ["127.0.0.1:5353"]', 'listen = ["127.0.0.1:15353"]', 1)
s = s.replace('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:18080"', 1)
s = s.replace('[pools]\nenabled = true\n', '[pools]\nenabled = false\n', 1)
i = s.index('[console]\n')
j = s.index('enabled = true\n', i)
s = s[:j] + 'enabled = %s\n' % sys.argv[2] + s[j + len('enabled = true\n'):]
s = s.replace('[store]\n', '[[api.tokens]]\nname = "rss"\nrole = "viewer"\nsha256 = "%s"\n\n[store]\n' % sys.argv[3], 1)
print(s)
PY
}

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

for enabled in false true; do
  for run in $(seq "$runs"); do
    dir=$(mktemp -d)
    cp -r "$root/blocklists" "$dir/"
    config "$enabled" > "$dir/config.toml"
    (cd "$dir" && exec "$bin" --config config.toml >/dev/null 2>&1) &
    pid=$!
    for _ in $(seq 200); do
      curl -sf http://127.0.0.1:18080/healthz >/dev/null && break
      sleep 0.1
    done
    sleep 3
    line="console=$enabled run=$run idle_rss_kib=$(rss $pid)"
    if [ "$enabled" = true ]; then
      jar="$dir/cookies"
      curl -sf -c "$jar" -o /dev/null -d "token=$token" http://127.0.0.1:18080/signin
      for page in / '/?range=7d' '/?range=30d' /hits '/hits?table=queries' /incidents /quarantine /feeds /feeds/mining '/check?name=xmr.pool.minergate.com' '/clients?ip=127.0.0.1'; do
        curl -sf -b "$jar" -o /dev/null "http://127.0.0.1:18080$page"
      done
      sleep 3
      line="$line after_pages_rss_kib=$(rss $pid)"
    else
      # The same reads straight through the API, so the two "after" figures differ only by
      # what the console itself keeps (the store's and allocator's caches grow either way).
      for path in /api/v1/stats /api/v1/incidents /api/v1/quarantine /api/v1/feeds /api/v1/hits /api/v1/queries \
        /api/v1/feeds/mining /api/v1/feeds/mining/versions '/api/v1/check?name=xmr.pool.minergate.com' \
        /api/v1/clients/127.0.0.1 '/api/v1/queries?client=127.0.0.1&limit=20'; do
        curl -sf -H "Authorization: Bearer $token" -o /dev/null "http://127.0.0.1:18080$path"
      done
      sleep 3
      line="$line after_api_reads_rss_kib=$(rss $pid)"
    fi
    echo "$line"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
  done
done
