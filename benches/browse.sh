#!/usr/bin/env bash
# The ISIN browser's benchmarks of BENCHMARKS.md: wrk against a release `isinbeat serve` (web
# only) on 127.0.0.1 with a logged-in session cookie (and an API token for the API), over ROWS
# GLEIF-format ISINs plus a million named instruments (Xetra format) for the name search.
#
#   benches/browse.sh ROWS [DATABASE_URL]      # default: 1000000, a SQLite file in BENCH_DIR
#
# With a PostgreSQL URL the database it names is emptied first. BENCH_DIR keeps the generated
# files (and the SQLite database) between runs; KEEP_DATA=1 reuses a database already loaded.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
rows="${1:-1000000}"
work="${BENCH_DIR:-$(mktemp -d)}"
mkdir -p "$work"
url="${2:-$work/browse-$rows.sqlite3}"
named=$(( rows < 1000000 ? rows : 1000000 ))
target="${CARGO_TARGET_DIR:-target}"
cargo build -q --release --bin isinbeat
cargo bench -q --bench import --no-run 2>/dev/null
bin="$target/release/isinbeat"
export DATABASE_URL="$url" ISINBEAT_SEED=none ISINBEAT_LOG=warn

if [[ "${KEEP_DATA:-}" != 1 ]]; then
  [[ -f "$work/gleif-$rows.zip" ]] || cargo bench -q --bench import -- gen "$rows" "$work/gleif-$rows.zip"
  [[ -f "$work/names-$named.csv" ]] || cargo bench -q --bench import -- gen-names "$named" "$work/names-$named.csv"
  if [[ "$url" == postgres* ]]; then
    psql "$url" -qc "DROP SCHEMA public CASCADE" -qc "CREATE SCHEMA public"
  else
    rm -f "$url" "$url-wal" "$url-shm"
  fi
  "$bin" migrate >/dev/null
  /usr/bin/time -f "import gleif: %e s, %M kB peak" "$bin" import "$work/gleif-$rows.zip" --format gleif_isin_lei --source gleif | tail -2
  /usr/bin/time -f "import names: %e s, %M kB peak" "$bin" import "$work/names-$named.csv" --format xetra_instruments --source names | tail -2
  # What autovacuum would have done by the time anyone browses; measuring while it runs after
  # millions of inserts would time autovacuum.
  [[ "$url" == postgres* ]] && psql "$url" -qc "VACUUM ANALYZE"
fi

# A user of its own (made once; with KEEP_DATA=1 it is already there with this password).
password="isinbeat browse bench"
ISINBEAT_SUPERUSER_PASSWORD="$password" "$bin" createsuperuser --username bench --no-input >/dev/null 2>&1 || true
port=$(( 20000 + RANDOM % 20000 ))
ISINBEAT_BIND="127.0.0.1:$port" ISINBEAT_WEB_WORKERS=2 \
  "$bin" serve --no-scheduler --no-worker >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 50); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.2; done

# Log in as a person would: the form's CSRF token, then the form.
jar="$work/cookies.txt"
cookie=$(admin_login "$base" "$jar" bench "$password")
token=$(csrf_token "$base" "$jar" /admin/account/)
secret=$(curl -s -b "$jar" --data-urlencode "csrf_token=$token" --data-urlencode "name=bench" \
  "$base/admin/account/tokens" | grep -o 'isb_[A-Za-z0-9]*' | head -1)

# The cursor 5,000 pages of 50 in, found through the API a thousand at a time.
cursor=""
for _ in $(seq 250); do
  cursor=$(curl -s -H "Authorization: Bearer $secret" "$base/api/v1/isins?limit=1000${cursor:+&after=$cursor}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["next"] or "")')
done
[[ -n "$cursor" ]] || { echo "fewer than 250,000 ISINs" >&2; exit 1; }

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
measure "list page 1" 1 "/admin/isins/"
measure "list page 1" 2 "/admin/isins/"
measure "deep page (5,000 pages in)" 1 "/admin/isins/?after=$cursor"
measure "prefix search US0378" 1 "/admin/isins/?q=US0378"
measure "name search, 2 words" 1 "/admin/isins/?q=alpineorchard+summitalpine"
measure "name search, 1 word" 1 "/admin/isins/?q=alpineorchard"
measure "country filter DE" 1 "/admin/isins/?country=DE"
measure "detail page" 1 "/admin/isins/$cursor/"
measure "API list (100)" 1 "/api/v1/isins" api

# The whole list as CSV, streamed: rows/s and the server's peak memory.
start=$(date +%s.%N)
lines=$(curl -s -H "Cookie: $cookie" "$base/admin/isins/export.csv" | wc -l)
end=$(date +%s.%N)
echo "export.csv: $((lines - 1)) rows in $(echo "$end - $start" | bc) s = $(echo "($lines - 1) / ($end - $start)" | bc) rows/s"
echo "server peak RSS: $(awk '/VmHWM/ { print $2, $3 }' /proc/$server/status)"
