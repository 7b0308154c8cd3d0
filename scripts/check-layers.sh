#!/usr/bin/env bash
# Fails when a workspace crate depends on a crate at its own layer or above.
#
# Cargo already refuses cycles between crates; this keeps the *order* of docs/ARCHITECTURE.md:
# a lower layer never names a higher one, even where no cycle would result (the store must
# not learn about incidents, the DNS path must not learn about the API). Dev-dependencies are
# checked too: a test that needs a higher crate belongs in that crate or in tests/.
# Reads `cargo metadata` (no build); the layer table is in scripts/check-layers.py.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v python3 >/dev/null || { echo "check-layers: python3 is missing (Debian package: python3)" >&2; exit 1; }
meta=$(cargo metadata --format-version 1 --no-deps --locked)
printf '%s' "$meta" | python3 scripts/check-layers.py
