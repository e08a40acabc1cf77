#!/usr/bin/env bash
# The "as of" benchmark of BENCHMARKS.md (target: an as_of list page at 10 M ISINs, p99 ≤ 20 ms):
# wrk against a release `isinbeat serve` (web only) on 127.0.0.1 with a logged-in session cookie
# (and an API token for the API), over ROWS GLEIF-format ISINs imported once, the moment T taken,
# then three more files with 1 %, 2 % and 4 % of the LEIs changed imported on top (their
# superseded versions kept, as the as_of window keeps them). Pages as of T and as now are
# measured side by side; an export as of T is checked against the export taken at T.
#
#   benches/as_of.sh ROWS [DATABASE_URL]      # default: 10000000, a SQLite file in BENCH_DIR
#
# With a PostgreSQL URL the database it names is emptied first. BENCH_DIR keeps the generated
# files (and the SQLite database) between runs; KEEP_DATA=1 reuses a database already loaded
# (T is then read from BENCH_DIR/as-of-moment).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
rows="${1:-10000000}"
work="${BENCH_DIR:-$(mktemp -d)}"
mkdir -p "$work"
url="${2:-$work/as-of-$rows.sqlite3}"
target="${CARGO_TARGET_DIR:-target}"
cargo build -q --release --bin isinbeat
cargo bench -q --bench import --no-run 2>/dev/null
bin="$target/release/isinbeat"
export DATABASE_URL="$url" ISINBEAT_SEED=none ISINBEAT_LOG=warn

password="isinbeat as-of bench"
port=$(( 20000 + RANDOM % 20000 ))
base="http://127.0.0.1:$port"
start_server() {
  ISINBEAT_BIND="127.0.0.1:$port" ISINBEAT_WEB_WORKERS=2 \
    "$bin" serve --no-scheduler --no-worker >"$work/serve.log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 50); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.2; done
}
jar="$work/cookies.txt"

if [[ "${KEEP_DATA:-}" != 1 ]]; then
  [[ -f "$work/gleif-$rows.zip" ]] || cargo bench -q --bench import -- gen "$rows" "$work/gleif-$rows.zip"
  for every in 100 50 25; do
    [[ -f "$work/gleif-$rows-$every.zip" ]] ||
      cargo bench -q --bench import -- gen "$rows" "$work/gleif-$rows-$every.zip" "$every"
  done
  if [[ "$url" == postgres* ]]; then
    psql "$url" -qc "DROP SCHEMA public CASCADE" -qc "CREATE SCHEMA public"
  else
    rm -f "$url" "$url-wal" "$url-shm"
  fi
  "$bin" migrate >/dev/null
  ISINBEAT_SUPERUSER_PASSWORD="$password" "$bin" createsuperuser --username bench --no-input >/dev/null 2>&1 || true
  /usr/bin/time -f "import 1: %e s, %M kB peak" "$bin" import "$work/gleif-$rows.zip" --format gleif_isin_lei --source gleif | tail -1
  sleep 1
  date -u +%Y-%m-%dT%H:%M:%S.%6NZ >"$work/as-of-moment"
  # The export at T, to compare with the export as of T once three more files are in.
  start_server
  cookie=$(admin_login "$base" "$jar" bench "$password")
  curl -s -H "Cookie: $cookie" "$base/admin/isins/export.csv" >"$work/export-at-t.csv"
  kill "$server"; wait "$server" 2>/dev/null || true
  sleep 1
  for every in 100 50 25; do
    /usr/bin/time -f "import 1/$every changed: %e s, %M kB peak" \
      "$bin" import "$work/gleif-$rows-$every.zip" --format gleif_isin_lei --source gleif | tail -1
  done
  [[ "$url" == postgres* ]] && psql "$url" -qc "VACUUM ANALYZE"
fi
moment=$(cat "$work/as-of-moment")
echo "as of $moment"

ISINBEAT_SUPERUSER_PASSWORD="$password" "$bin" createsuperuser --username bench --no-input >/dev/null 2>&1 || true
start_server
cookie=$(admin_login "$base" "$jar" bench "$password")
secret=$(api_token "$base" "$jar" bench)

# A cursor 2,000 pages of 50 in, as of T, found through the API a thousand at a time.
cursor=""
for _ in $(seq 100); do
  cursor=$(curl -s -H "Authorization: Bearer $secret" \
    "$base/api/v1/isins?limit=1000&as_of=$moment${cursor:+&after=$cursor}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["next"] or "")')
done
[[ -n "$cursor" ]] || { echo "fewer than 100,000 ISINs as of $moment" >&2; exit 1; }

measure() { # NAME CONNECTIONS PATH [AUTH]
  local header="Cookie: $cookie"
  [[ "${4:-}" == api ]] && header="Authorization: Bearer $secret"
  local status
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "$header" "$base$3")
  [[ "$status" == 200 ]] || { echo "$1: HTTP $status for $3" >&2; exit 1; }
  wrk -t"$2" -c"$2" -d"${DURATION:-10}s" --latency -H "$header" "$base$3" |
    awk -v name="$1" -v c="$2" '
      /Requests\/sec/ { rps = $2 }
      $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
      END { printf "| %s | %d | %.0f | %s | %s |\n", name, c, rps, p50, p99 }'
}
echo "| page | connections | req/s | p50 | p99 |"
echo "|---|---|---|---|---|"
measure "list page 1, now" 1 "/admin/isins/"
measure "list page 1, as of T" 1 "/admin/isins/?as_of=$moment"
measure "list page 1, as of T" 2 "/admin/isins/?as_of=$moment"
measure "deep page (2,000 pages in), as of T" 1 "/admin/isins/?as_of=$moment&after=$cursor"
measure "country filter DE, as of T" 1 "/admin/isins/?country=DE&as_of=$moment"
measure "prefix search US0378, as of T" 1 "/admin/isins/?q=US0378&as_of=$moment"
measure "detail page, as of T" 1 "/admin/isins/$cursor/?as_of=$moment"
measure "API list (100), as of T" 1 "/api/v1/isins?as_of=$moment" api

# The export as of T, streamed, and whether it is the export taken at T byte for byte.
if [[ -f "$work/export-at-t.csv" ]]; then
  start=$(date +%s.%N)
  curl -s -H "Cookie: $cookie" "$base/admin/isins/export.csv?as_of=$moment" >"$work/export-as-of-t.csv"
  end=$(date +%s.%N)
  lines=$(wc -l <"$work/export-as-of-t.csv")
  echo "export.csv as of T: $((lines - 1)) rows in $(echo "$end - $start" | bc) s"
  if cmp -s "$work/export-at-t.csv" "$work/export-as-of-t.csv"; then
    echo "export as of T: byte for byte the export taken at T"
  else
    echo "export as of T differs from the export taken at T" >&2
    exit 1
  fi
fi
echo "server peak RSS: $(awk '/VmHWM/ { print $2, $3 }' /proc/$server/status)"
