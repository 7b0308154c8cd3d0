#!/usr/bin/env python3
"""Lists candidates for the shipped mining feed that the feed's own listed names point at:
the review queue's lookalike rules (docs/REVIEW.md) run once over feed data instead of
campus traffic.

    python3 scripts/review-shipped-feed.py /path/to/shared/data/feeds

Prints two sections, each line `name <- listed names | files it is in`:
  other-tld      the second-level label of a listed registered domain (4+ characters) under
                 another registered domain (`c3pool.com` listed, `c3pool.org` seen)
  operator-host  a `stratum`/`pool`/coin-ticker host under a registered domain that has listed
                 hosts but is not listed whole (`pool.btc.com`, with `ss.btc.com` listed)
Names come only from the files read (the given data folder, blocklists/sources/ and the
`link` hosts of mempool's pools-v2.json): nothing is guessed. The decisions taken on them live
in blocklists/sources/review-2026-12.txt; names listed there (or already in the feed) are
not printed again. Only the Python standard library is used.
"""

import json
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
GENERIC_SECOND_LEVELS = {"ac", "co", "com", "edu", "gov", "gob", "go", "ne", "net", "or", "org"}
# The same words as crates/feeds/src/review/families.rs (ENDPOINT_WORDS).
ENDPOINT_WORDS = set(
    "stratum pool pools mine mining miner proxy solo xmr eth etc rvn btc bch ltc zec erg kas "
    "xhv zeph dero beam grin cfx flux nexa alph dnx qrl ton xna clore neox ctxc firo ae ckb "
    "iron kls pyi rxd zil xel sero xmv wow aeon".split()
)
NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)+")


def registered(name):
    """Last two labels, three under a country code's generic second level (as the queue)."""
    labels = name.split(".")
    if len(labels) < 2:
        return None
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in GENERIC_SECOND_LEVELS else 2
    return ".".join(labels[-keep:])


def is_endpoint(label):
    return any(p.rstrip("0123456789") in ENDPOINT_WORDS for p in re.split("[-_]", label))


def names_in(path):
    """Every host name on the file's non-comment lines, in any of the feed syntaxes."""
    found = set()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("!"):
            continue
        for token in line.split():
            t = re.sub(r"^[a-z]+://", "", token.lower().strip("|^").rstrip("."))
            t = t.split("/")[0].lstrip("*.").split(":")[0]
            if NAME.fullmatch(t) and re.search("[a-z]", t.split(".")[-1]):
                found.add(t)
    return found


def sources(data):
    seen = {}
    for f in sorted(data.rglob("*")):
        if f.is_file() and f.suffix != ".json" and f.name != "SOURCES.md":
            for n in names_in(f):
                seen.setdefault(n, set()).add(str(f.relative_to(data)))
    for f in sorted(data.rglob("pools-v2.json")):
        for pool in json.loads(f.read_text(encoding="utf-8")):
            host = urlparse(pool.get("link") or "").hostname
            if host:
                seen.setdefault(host.lower(), set()).add(f"{f.relative_to(data)} (link of {pool['name']})")
    for n in names_in(ROOT / "blocklists/sources/mining-domains.txt"):
        seen.setdefault(n, set()).add("blocklists/sources/mining-domains.txt")
    return seen


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    seen = sources(Path(sys.argv[1]))
    feed = [l.strip() for l in (ROOT / "blocklists/mining.txt").read_text().splitlines()
            if l.strip() and not l.startswith("#")]
    listed_set = set(feed)
    decided = names_in(ROOT / "blocklists/sources/review-2026-12.txt")

    def listed(n):
        labels = n.split(".")
        return any(".".join(labels[i:]) in listed_set for i in range(len(labels) - 1))

    by_registered = {}
    for n in feed:
        r = registered(n)
        if r:
            by_registered.setdefault(r, []).append(n)
    families = {}
    for r in by_registered:
        label = r.split(".")[0]
        if len(label) >= 4:
            families.setdefault(label, set()).add(r)
    operators = {r for r in by_registered if r not in listed_set}
    other_tld, operator_host = [], []
    for n in sorted(seen):
        r = registered(n)
        if not r or listed(n) or n in decided:
            continue
        where = " | " + ", ".join(sorted(seen[n]))
        family = families.get(r.split(".")[0], set())
        if family and r not in family and r not in by_registered:
            other_tld.append(f"{n} <- {', '.join(sorted(family))}{where}")
        below = n[: -len(r)].rstrip(".")
        if r in operators and below and any(is_endpoint(l) for l in below.split(".")):
            operator_host.append(f"{n} <- {', '.join(by_registered[r][:3])}{where}")
    print("== other-tld", *other_tld, "== operator-host", *operator_host, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
