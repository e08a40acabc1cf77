#!/usr/bin/env bash
# The reconciliation benchmark of BENCHMARKS.md: ROWS ISINs in three sources — GLEIF
# (`gen`), FIRDS (`gen-firds`, one to three venues each) and Xetra (`gen-names`), the same
# synthetic ISINs — imported with `isinbeat import`, then `isinbeat reconcile` (what an import
# run does after it publishes) timed, then a release `isinbeat serve` (web only) on 127.0.0.1
# asked for the reconciliation page, the API's counts and each rule's first page, ten times
# each; the target is the page in ≤ 1 s at 10 M ISINs.
#
#   benches/reconciliation.sh ROWS [DATABASE_URL]   # default: 10000000, a SQLite file in BENCH_DIR
#
# With a PostgreSQL URL the database it names is emptied first. BENCH_DIR keeps the generated
# files (and the SQLite database) between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
rows="${1:-10000000}"
work="${BENCH_DIR:-$(mktemp -d)}"
mkdir -p "$work"
url="${2:-$work/reconciliation-$rows.sqlite3}"
target="${CARGO_TARGET_DIR:-target}"
cargo build -q --release --bin isinbeat
cargo bench -q --bench import --no-run 2>/dev/null
bin="$target/release/isinbeat"
export DATABASE_URL="$url" ISINBEAT_SEED=none ISINBEAT_LOG=warn

[[ -f "$work/gleif-$rows.zip" ]] || cargo bench -q --bench import -- gen "$rows" "$work/gleif-$rows.zip"
[[ -f "$work/FULINS_E_20250104_01of01-$rows.zip" ]] ||
  cargo bench -q --bench import -- gen-firds "$rows" "$work/FULINS_E_20250104_01of01-$rows.zip"
[[ -f "$work/xetra-$rows.csv" ]] || cargo bench -q --bench import -- gen-names "$rows" "$work/xetra-$rows.csv"
if [[ "$url" == postgres* ]]; then
  psql "$url" -qc "DROP SCHEMA public CASCADE" -qc "CREATE SCHEMA public"
else
  rm -f "$url" "$url-wal" "$url-shm"
fi
"$bin" migrate >/dev/null
"$bin" import "$work/gleif-$rows.zip" --format gleif_isin_lei --source gleif >/dev/null
"$bin" import "$work/FULINS_E_20250104_01of01-$rows.zip" --format firds_fulins --source firds >/dev/null
"$bin" import "$work/xetra-$rows.csv" --format xetra_instruments --source xetra >/dev/null
[[ "$url" == postgres* ]] && psql "$url" -qc "VACUUM ANALYZE"

started=$(date +%s.%N)
"$bin" reconcile
took=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
awk -v t="$took" 'BEGIN { printf "isinbeat reconcile (after each import): %.1f s\n", t }'

password="isinbeat reconciliation bench"
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

# The slowest of ten requests of each, in seconds.
slowest() {
  local worst=0 t
  for _ in $(seq 10); do
    t=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "$@")
    [[ "${t%% *}" == 200 ]] || { echo "HTTP ${t%% *} for $*" >&2; exit 1; }
    worst=$(awk -v a="$worst" -v b="${t#* }" 'BEGIN { print (b > a) ? b : a }')
  done
  echo "$worst"
}
echo "page /admin/reconciliation/: slowest of 10 $(slowest -b "$jar" "$base/admin/reconciliation/") s (target 1 s)"
echo "GET /api/v1/reconciliation: slowest of 10 $(slowest -H "Authorization: Bearer $secret" "$base/api/v1/reconciliation") s"
for rule in lei_mismatch venue_lei terminated_listed currency_mismatch lei_coverage; do
  echo "page /admin/reconciliation/$rule/: slowest of 10 $(slowest -b "$jar" "$base/admin/reconciliation/$rule/") s"
done
