#!/usr/bin/env bash
# Regenerates docs/diffs.md: the architecture diffs shown in the docs (checked by
# tests/it/diffs.rs). Usage: bash bench/docs_diffs.sh > docs/diffs.md
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${RECSPEC_BIN:-target/release/recspec}
cat <<'MD'
# Architecture diffs of the seed models

What a reviewer sees in a pull request that turns one spec into another: `recspec diff OLD NEW`
matches instances and nodes by name and lists what was added, removed or changed, with the
parameter counts. `tests/it/diffs.rs` checks that this page matches the current specs;
regenerate it with `bash bench/docs_diffs.sh > docs/diffs.md`.
MD
for pair in "dumn dumn_one_memory" "dumn dumn_no_fp" "mmoe dlen"; do
  set -- $pair
  printf '\n## `recspec diff specs/%s.recspec specs/%s.recspec`\n\n```text\n' "$1" "$2"
  "$bin" diff "specs/$1.recspec" "specs/$2.recspec" || [ $? -eq 1 ]
  printf '```\n'
done
