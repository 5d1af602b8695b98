#!/usr/bin/env bash
# Fuzz every target for SECONDS seconds (default 600) with the seed corpora under fuzz/corpus.
# Usage: runtime/fuzz/run.sh [SECONDS]   (needs cargo-fuzz; on stable Rust, RUSTC_BOOTSTRAP=1 is set here)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
export RUSTC_BOOTSTRAP=1
for t in fuzz_checkpoint fuzz_config fuzz_sequences fuzz_ratings; do
  echo "== $t: ${secs}s =="
  cargo fuzz run -O --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -timeout=10 -print_final_stats=1
done
