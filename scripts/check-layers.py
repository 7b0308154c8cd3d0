#!/usr/bin/env python3
"""Reads `cargo metadata --no-deps` on stdin; fails when a workspace crate depends on a crate
at its own layer or above (docs/ARCHITECTURE.md has the same table, with the reasons)."""
import json
import sys

# Layer of every workspace crate, lowest first. A crate may depend only on lower layers.
LAYERS = {
    "poolguard-model": 0,
    "poolguard-versions": 0,
    "poolguard-config": 1,
    "poolguard-record": 1,
    "poolguard-clients": 1,
    "poolguard-policy": 2,
    "poolguard-identity": 2,
    "poolguard-store": 3,
    "poolguard-feeds": 4,
    "poolguard-incidents": 4,
    "poolguard-dns": 4,
    "poolguard-export": 4,
    "poolguard-store-pg": 4,
    "poolguard-api": 5,
    "poolguard-console": 6,
    "poolguard": 7,
}

meta = json.load(sys.stdin)
members = {p["name"] for p in meta["packages"]}
bad = [
    f"{name}: not in the layer table of scripts/check-layers.py (add it with its layer)"
    for name in sorted(members - LAYERS.keys())
]
for package in meta["packages"]:
    mine = LAYERS.get(package["name"])
    for dep in package["dependencies"]:
        theirs = LAYERS.get(dep["name"])
        if mine is None or theirs is None or dep["name"] not in members:
            continue
        if theirs >= mine:
            kind = dep.get("kind") or "normal"
            bad.append(
                f"{package['name']} (layer {mine}) depends on {dep['name']} "
                f"(layer {theirs}) [{kind}]"
            )
if bad:
    print("layer violations:", *bad, sep="\n  ")
    sys.exit(1)
print(f"layers ok: {len(members)} crates, every dependency points down")
