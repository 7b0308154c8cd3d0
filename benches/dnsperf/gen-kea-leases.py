#!/usr/bin/env python3
"""A Kea memfile lease4 file for the identity cost measurement (docs/BENCHMARKS.md, issue 15).

ADDRESSES addresses (default 50,000) with LEASES leases each (default 20: 1,000,000 rows), the
last one of each still active, every lease a different MAC and a host name; plus an active
lease of 127.0.0.1, the harness's only client, so every hit is attributed through the index.
Deterministic. Usage: gen-kea-leases.py OUT [ADDRESSES] [LEASES]
"""
import sys
import time

out = sys.argv[1]
addresses = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
leases = int(sys.argv[3]) if len(sys.argv) > 3 else 20
valid = 3600
now = int(time.time())
with open(out, "w") as f:
    f.write("address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,"
            "hostname,state,user_context,pool_id\n")
    for k in range(leases):
        # Lease k of every address; the last round still runs an hour from now.
        expire = now + valid - (leases - 1 - k) * valid
        for a in range(addresses):
            ip = f"10.{64 + a // 65536}.{(a // 256) % 256}.{a % 256}"
            n = k * addresses + a
            mac = ":".join(f"{(n >> s) & 0xff:02x}" for s in (40, 32, 24, 16, 8, 0))
            host = f"pc-{n % 100_000}"
            f.write(f"{ip},{mac},,{valid},{expire},1,0,0,{host},0,,0\n")
    f.write(f"127.0.0.1,02:00:00:00:00:01,,{valid},{now + valid},1,0,0,bench-client,0,,0\n")
