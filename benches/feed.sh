#!/usr/bin/env bash
# The change feed's benchmark of BENCHMARKS.md: a release `isinbeat serve` (web only) on
# 127.0.0.1 over a first import of ROWS GLEIF-format ISINs (ROWS "added" changes) and a second
# file with 1 % of them changed, read from the beginning through GET /api/v1/changes in pages of
# 10,000 by one client following `next` (benches/feed.rs), then through `isinbeat changes` to
# /dev/null.
#
#   benches/feed.sh ROWS [DATABASE_URL]      # default: 1000000, a SQLite file in BENCH_DIR
#
# With a PostgreSQL URL the database it names is emptied first. BENCH_DIR keeps the generated
# files (and the SQLite database) between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
rows="${1:-1000000}"
work="${BENCH_DIR:-$(mktemp -d)}"
mkdir -p "$work"
url="${2:-$work/feed-$rows.sqlite3}"
target="${CARGO_TARGET_DIR:-target}"
cargo build -q --release --bin isinbeat
cargo bench -q --bench import --no-run 2>/dev/null
cargo bench -q --bench feed --no-run 2>/dev/null
bin="$target/release/isinbeat"
export DATABASE_URL="$url" ISINBEAT_SEED=none ISINBEAT_LOG=warn

[[ -f "$work/gleif-$rows.zip" ]] || cargo bench -q --bench import -- gen "$rows" "$work/gleif-$rows.zip"
[[ -f "$work/gleif-$rows-changed.zip" ]] ||
  cargo bench -q --bench import -- gen "$rows" "$work/gleif-$rows-changed.zip" 100
if [[ "$url" == postgres* ]]; then
  psql "$url" -qc "DROP SCHEMA public CASCADE" -qc "CREATE SCHEMA public"
else
  rm -f "$url" "$url-wal" "$url-shm"
fi
"$bin" migrate >/dev/null
"$bin" import "$work/gleif-$rows.zip" --format gleif_isin_lei --source gleif >/dev/null
"$bin" import "$work/gleif-$rows-changed.zip" --format gleif_isin_lei --source gleif >/dev/null
[[ "$url" == postgres* ]] && psql "$url" -qc "VACUUM ANALYZE"

password="isinbeat feed bench"
ISINBEAT_SUPERUSER_PASSWORD="$password" "$bin" createsuperuser --username bench --no-input >/dev/null 2>&1 || true
port=$(( 20000 + RANDOM % 20000 ))
ISINBEAT_BIND="127.0.0.1:$port" ISINBEAT_WEB_WORKERS=2 \
  "$bin" serve --no-scheduler --no-worker >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 50); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.2; done
jar="$work/cookies.txt"
admin_login "$base" "$jar" bench "$password" >/dev/null
secret=$(api_token "$base" "$jar" bench)

# One client (benches/feed.rs) reads the whole feed on one kept-alive connection, parsing each
# page and following its `next`.
cargo bench -q --bench feed -- read "$base" "$secret"

started=$(date +%s.%N)
lines=$("$bin" changes | wc -l)
took=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
awk -v n="$lines" -v t="$took" 'BEGIN { printf "isinbeat changes: %d lines, %.2f s, %.0f changes/s\n", n, t, n / t }'
