#!/usr/bin/env bash
# The import benchmarks of BENCHMARKS.md: 1 M and 10 M GLEIF-format rows from a zip through a
# file:// source, on SQLite and PostgreSQL — first import, forced re-import of the same file,
# and a file with 1 % of the rows changed.
#
#   benches/import.sh [ROWS…]            # default: 1000000 10000000
#   ISINBEAT_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test  (PostgreSQL; skipped if unset)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${BENCH_DIR:-$(mktemp -d)}"
cargo bench --bench import --no-run >/dev/null 2>&1
bench() { cargo bench -q --bench import -- "$@" 2>/dev/null; }
for rows in "${@:-1000000 10000000}"; do
  for n in $rows; do
    bench gen "$n" "$work/gleif-$n.zip"
    bench gen "$n" "$work/gleif-$n-changed.zip" 100
    echo "== SQLite, $n rows"
    db="$work/bench-$n.sqlite3"
    rm -f "$db" "$db-wal" "$db-shm"
    echo -n "first:   "; bench run "$db" "$work/gleif-$n.zip"
    echo -n "forced:  "; bench run "$db" "$work/gleif-$n.zip" --force
    echo -n "changed: "; bench run "$db" "$work/gleif-$n-changed.zip"
    if [[ -n "${ISINBEAT_BENCH_DATABASE_URL:-}" ]]; then
      echo "== PostgreSQL, $n rows"
      name="isinbeat_bench_import_$$"
      psql "$ISINBEAT_BENCH_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $name" -qc "CREATE DATABASE $name"
      url="${ISINBEAT_BENCH_DATABASE_URL%/*}/$name"
      echo -n "first:   "; bench run "$url" "$work/gleif-$n.zip"
      echo -n "forced:  "; bench run "$url" "$work/gleif-$n.zip" --force
      echo -n "changed: "; bench run "$url" "$work/gleif-$n-changed.zip"
      psql "$ISINBEAT_BENCH_DATABASE_URL" -qc "DROP DATABASE $name"
    fi
  done
done
