#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each) with cargo-fuzz on the nightly
# toolchain, its corpus seeded from tests/data and kept in fuzz/corpus/ between runs. Exits 1
# if a target finds a crash (the input is left in fuzz/artifacts/TARGET/).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET…]     # targets: isin formats archives
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
if (($#)); then targets=("$@"); else targets=(isin formats archives); fi
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Seeds: the ISINs of the small GLEIF file, and each test file as a format input (its first
# byte picks the reader) and as an archive.
mkdir -p corpus/isin corpus/formats corpus/archives
if [[ -z "$(ls -A corpus/isin)" ]]; then
  tr -d '\r' <../tests/data/gleif-small.csv | awk -F, 'NR > 1 && $2 ~ /^[A-Z0-9]+$/ { print $2 }' | head -50 |
    while read -r isin; do printf '%s' "$isin" >"corpus/isin/$isin"; done
  for seed in ../tests/data/*; do
    name=$(basename "$seed")
    case "$name" in
      gleif*.csv) pick='\x00' ;; firds*.xml) pick='\x01' ;; xetra*) pick='\x02' ;; *) pick='\x03' ;;
    esac
    { printf "$pick"; cat "$seed"; } >"corpus/formats/$name"
    cp "$seed" "corpus/archives/$name"
  done
fi

status=0
for target in "${targets[@]}"; do
  echo "== $target, $seconds s"
  if ! cargo +nightly fuzz run "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>"$target.log"; then
    echo "fuzz: $target found a problem; see fuzz/$target.log and fuzz/artifacts/$target/" >&2
    status=1
  fi
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+.*DONE' "$target.log" | tail -4
done
exit "$status"
