#!/usr/bin/env bash
# Reruns every benchmark of BENCHMARKS.md, one after the other (they share the two cores), and
# keeps each one's output in BENCH_DIR/NAME.txt. Takes a few hours with the defaults; the
# figures are then copied into BENCHMARKS.md by hand, with the date.
#
#   benches/all.sh                      # everything
#   benches/all.sh scheduler import     # some: scheduler import browse django soak
#
# PostgreSQL variants use ISINBEAT_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."
export ISINBEAT_BENCH_DATABASE_URL="${ISINBEAT_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export BENCH_DIR="${BENCH_DIR:-$(mktemp -d)}"
if (($#)); then wanted=("$@"); else wanted=(scheduler import browse django soak); fi
for name in "${wanted[@]}"; do
  echo "== $name ($(date -u '+%Y-%m-%d %H:%M') UTC)"
  case "$name" in
    scheduler)
      cargo bench -q --bench scheduler -- sqlite
      cargo bench -q --bench scheduler -- postgres ;;
    import) benches/import.sh 1000000 10000000 ;;
    browse)
      benches/browse.sh 1000000
      benches/browse.sh 1000000 "$ISINBEAT_BENCH_DATABASE_URL" ;;
    django)
      zip="$BENCH_DIR/gleif-1000000.zip" names="$BENCH_DIR/names-1000000.csv"
      [[ -f "$zip" ]] || cargo bench -q --bench import -- gen 1000000 "$zip"
      [[ -f "$names" ]] || cargo bench -q --bench import -- gen-names 1000000 "$names"
      benches/django/run.sh "$zip" "$names" ;;
    soak) benches/soak.sh "${SOAK_SECONDS:-3600}" ;;
    *) echo "unknown benchmark: $name (scheduler import browse django soak)" >&2; exit 2 ;;
  esac 2>&1 | tee "$BENCH_DIR/$name.txt"
done
echo "outputs in $BENCH_DIR"
