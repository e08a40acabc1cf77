#!/usr/bin/env bash
# The soak test of BENCHMARKS.md: a deployment on PostgreSQL — two schedulers, three workers and
# a web server as separate processes — with 5,000 schedules firing every minute while a
# 1,000,000-row import runs and wrk browses the admin. It reports the dispatch lateness (from an
# occurrence's time to its run's start), the runs by status (none may fail), the admin's
# latency under wrk, and each process's memory over time; it exits 1 if a run failed, a process
# died, or lateness or memory growth passed their bounds.
#
#   benches/soak.sh [SECONDS]            # default 3600
#   benches/soak.sh --smoke              # 60 s, 1,000 schedules, 100,000 rows: what .ci/run runs
#
# Environment: ISINBEAT_BENCH_DATABASE_URL (a PostgreSQL server's database the script may create
# databases beside; default postgres://postgres@127.0.0.1:5432/test), ISINBEAT_BIN (the binary;
# default: a release build), SOAK_SCHEDULES, SOAK_ROWS, SOAK_WORKERS, SOAK_CONCURRENCY,
# SOAK_MAX_P99_LATENESS (seconds, default 5), SOAK_MAX_RSS_GROWTH (percent, default 25),
# BENCH_DIR (keeps the logs, the memory samples and the generated file).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh

duration=3600 schedules=5000 rows=1000000
if [[ "${1:-}" == --smoke ]]; then
  duration=60 schedules=1000 rows=100000
elif [[ -n "${1:-}" ]]; then
  duration="$1"
fi
schedules="${SOAK_SCHEDULES:-$schedules}"
rows="${SOAK_ROWS:-$rows}"
workers="${SOAK_WORKERS:-3}"
concurrency="${SOAK_CONCURRENCY:-8}"
max_lateness="${SOAK_MAX_P99_LATENESS:-5}"
max_growth="${SOAK_MAX_RSS_GROWTH:-25}"
work="${BENCH_DIR:-$(mktemp -d)}"
mkdir -p "$work"
base_url="${ISINBEAT_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
for tool in psql wrk curl; do
  command -v "$tool" >/dev/null || { echo "soak: $tool is needed" >&2; exit 2; }
done

target="${CARGO_TARGET_DIR:-target}"
if [[ -z "${ISINBEAT_BIN:-}" ]]; then
  cargo build -q --release --bin isinbeat
  ISINBEAT_BIN="$target/release/isinbeat"
fi
bin="$ISINBEAT_BIN"
file="$work/gleif-$rows.zip"
if [[ ! -f "$file" ]]; then
  # The generator of the import benchmarks, built with the binary's profile.
  if [[ "$bin" == */debug/* ]]; then
    generator=$(cargo build -q --bench import --message-format=json |
      jq -r 'select(.reason == "compiler-artifact" and .target.name == "import") | .executable')
  else
    generator=$(cargo bench -q --bench import --no-run --message-format=json 2>/dev/null |
      jq -r 'select(.reason == "compiler-artifact" and .target.name == "import") | .executable')
  fi
  "$generator" gen "$rows" "$file" >/dev/null
fi

name="isinbeat_soak_$$"
psql "$base_url" -qc "CREATE DATABASE $name"
url="${base_url%/*}/$name"
export DATABASE_URL="$url" ISINBEAT_SEED=none ISINBEAT_LOG=warn ISINBEAT_RUN_HEARTBEAT_SECONDS=5
pids=()
sampler=""
cleanup() {
  for pid in "${pids[@]}" $sampler; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$base_url" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" || true
}
trap cleanup EXIT
"$bin" migrate >/dev/null

# The schedules, as code: one every minute each, spread over the minute's seconds (as a
# jitter would spread them), from the first whole minute a minute from now (time to apply
# them and start the processes).
start=$(( ( $(date +%s) + 60 ) / 60 * 60 + 60 ))
from=$(date -u -d "@$start" '+%Y-%m-%d %H:%M')
until=$(date -u -d "@$(( start + duration - 1 ))" '+%Y-%m-%d %H:%M:%S')
{
  for i in $(seq 1 "$schedules"); do
    printf '[[schedule]]\nname = "soak-%05d"\ntask = "sleep"\nparams = { seconds = 0 }\n' "$i"
    printf 'cron = "%d * * * * *"\nstart_at = "%s"\n\n' "$(( i % 60 ))" "$from"
  done
} >"$work/schedules.toml"
/usr/bin/time -f "schedules apply: %e s, %M kB peak" "$bin" schedules apply "$work/schedules.toml" | tail -1

# A user for the admin, and its session for wrk.
password="isinbeat soak test"
ISINBEAT_SUPERUSER_PASSWORD="$password" "$bin" createsuperuser --username soak --no-input >/dev/null
port=$(( 20000 + RANDOM % 20000 ))
admin="http://127.0.0.1:$port"

started() { # LABEL ARGS…: starts a process, logging to BENCH_DIR
  local label="$1"; shift
  "$bin" "$@" >"$work/$label.log" 2>&1 &
  pids+=("$!")
  roles+=("$label")
}
roles=()
ISINBEAT_BIND="127.0.0.1:$port" ISINBEAT_WEB_WORKERS=2 started web serve --no-scheduler --no-worker
started scheduler-1 scheduler
started scheduler-2 scheduler
for n in $(seq 1 "$workers"); do started "worker-$n" worker --concurrency "$concurrency"; done
for _ in $(seq 100); do curl -sf "$admin/healthz" >/dev/null && break; sleep 0.2; done

cookie=$(admin_login "$admin" "$work/cookies.txt" soak "$password")

# Memory of every process every 10 s, until the end; and the statements that had been running
# for more than a second at that moment (what a late minute waited on).
echo "seconds,process,rss_kb" >"$work/rss.csv"
: >"$work/slow-statements.txt"
(
  while sleep 10; do
    now=$(( $(date +%s) - start ))
    for i in "${!pids[@]}"; do
      rss=$(awk '/^VmRSS/ { print $2 }' "/proc/${pids[$i]}/status" 2>/dev/null || echo 0)
      echo "$now,${roles[$i]},$rss"
    done
    psql "$url" -Atqc "SELECT $now, round(extract(epoch FROM now() - query_start)::numeric, 1), wait_event_type,
                              wait_event, left(regexp_replace(query, '\s+', ' ', 'g'), 160)
                       FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                       AND state = 'active' AND now() - query_start > interval '1 second'" \
      >>"$work/slow-statements.txt" 2>/dev/null || true
  done >>"$work/rss.csv"
) &
sampler=$!

echo "soak: $schedules schedules every minute for $duration s, $workers workers × $concurrency," \
  "a $rows-row import, wrk on the admin (PostgreSQL, files in $work)"
wait_s=$(( start - $(date +%s) ))
(( wait_s > 0 )) || { echo "soak: setting up took past the start ($(( -wait_s )) s late)" >&2; exit 1; }
sleep "$wait_s"
# The import starts ten seconds in and runs beside everything else.
( sleep 10; /usr/bin/time -f "import: %e s, %M kB peak" "$bin" import "$file" --format gleif_isin_lei --source soak \
    >"$work/import.log" 2>&1 ) &
import=$!
cat >"$work/admin.lua" <<'LUA'
local paths = { "/admin/", "/admin/schedules/", "/admin/runs/", "/admin/isins/?q=US" }
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end
LUA
wrk -t2 -c4 -d"$(( duration - 5 ))s" --latency -s "$work/admin.lua" -H "Cookie: $cookie" "$admin" >"$work/wrk.txt" 2>&1 || true
sleep 5
wait "$import" || { echo "soak: the import failed:" >&2; tail -5 "$work/import.log" >&2; exit 1; }
# Let the last minute's runs finish.
sleep 15
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true

died=0
for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[$i]}" 2>/dev/null; then
    echo "soak: ${roles[$i]} died; its log ends:" >&2
    tail -5 "$work/${roles[$i]}.log" >&2
    died=1
  fi
done

q() { psql "$url" -Atqc "$1"; }
window="r.scheduled_for >= to_timestamp($start) AT TIME ZONE 'UTC' AND r.scheduled_for <= TIMESTAMP '$until'"
expected=$(( schedules * (duration / 60) ))
echo "== runs of the $expected occurrences in the window, by status"
q "SELECT status, count(*) FROM runs r WHERE r.schedule_name LIKE 'soak-%' AND $window GROUP BY status ORDER BY status" |
  tr '|' ' '
failed=$(q "SELECT count(*) FROM runs r WHERE r.schedule_name LIKE 'soak-%' AND $window AND status IN ('failed', 'expired', 'cancelled')")
occurred=$(q "SELECT count(*) FROM runs r WHERE r.schedule_name LIKE 'soak-%' AND $window")
echo "== dispatch lateness: occurrence → run started (s)"
lateness=$(q "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY s)::numeric, 3) || ' ' ||
                     round(percentile_cont(0.99) WITHIN GROUP (ORDER BY s)::numeric, 3) || ' ' || round(max(s)::numeric, 3)
              FROM (SELECT extract(epoch FROM started_at - scheduled_for) AS s FROM runs r
                    WHERE r.schedule_name LIKE 'soak-%' AND $window AND started_at IS NOT NULL) AS l")
read -r p50 p99 worst <<<"$lateness"
echo "p50 $p50  p99 $p99  max $worst"
# Each minute of occurrences: how many, how many started, mean and worst lateness; the whole table
# is kept in BENCH_DIR, and the minutes whose worst passed the bound are shown.
q "SELECT to_char(date_trunc('minute', scheduled_for), 'HH24:MI'), count(*), count(started_at),
          round(avg(extract(epoch FROM started_at - scheduled_for))::numeric, 2),
          round(max(extract(epoch FROM started_at - scheduled_for))::numeric, 2)
   FROM runs r WHERE r.schedule_name LIKE 'soak-%' AND $window GROUP BY 1 ORDER BY 1" |
  tr '|' ' ' >"$work/lateness-per-minute.txt"
awk -v m="$max_lateness" 'BEGIN { print "minute occurrences started mean max" } $5 > m || $3 < $2 { print; late++ }
     END { if (!late) print "(no minute had a run start more than " m " s late)" }' "$work/lateness-per-minute.txt"
echo "== the statements running longer than a second, sampled every 10 s: $(wc -l <"$work/slow-statements.txt")"
sort -t'|' -k2 -rn "$work/slow-statements.txt" | awk 'NR <= 5'
echo "== the queue's jobs at the end, by status (finished ones are deleted after a minute)"
q "SELECT status, count(*) FROM apalis.jobs GROUP BY status ORDER BY status" | tr '|' ' ' ||
  echo "(no queue in the database: QUEUE_URL names a broker)"
# Dead rows are what vacuuming reclaims; with the server's autovacuum off (as on some CI
# machines) nothing reclaims them during the soak, and the busiest tables' scans grow with them.
echo "== the tables with the most dead rows at the end (the server's autovacuum: $(q "SHOW autovacuum"))"
q "SELECT schemaname || '.' || relname, n_live_tup, n_dead_tup FROM pg_stat_user_tables
   ORDER BY n_dead_tup DESC LIMIT 5" | tr '|' ' '
echo "== the admin under wrk (2 threads, 4 connections, 4 pages in turn)"
awk '/Requests\/sec/ { print "requests/s " $2 } $1 == "50%" { print "p50 " $2 } $1 == "99%" { print "p99 " $2 }
     /Non-2xx/ { print "non-2xx responses " $NF }' "$work/wrk.txt"
echo "== memory (RSS, MB): after the first quarter, at the end, peak"
memory=$(awk -F, -v limit="$max_growth" -v settled="$(( duration / 4 ))" 'NR > 1 && $3 > 0 {
    if ($1 >= settled && !($2 in first)) first[$2] = $3
    last[$2] = $3; if ($3 > peak[$2]) peak[$2] = $3
  }
  END {
    bad = 0
    for (p in last) {
      g = first[p] ? 100 * (last[p] - first[p]) / first[p] : 0
      printf "%-12s %7.1f %7.1f %7.1f  (%+.0f %%)\n", p, first[p] / 1024, last[p] / 1024, peak[p] / 1024, g
      if (g > limit) bad = 1
    }
    print "grew " bad
  }' "$work/rss.csv")
grep -v '^grew ' <<<"$memory" | sort
growth=$(awk '/^grew / { print $2 }' <<<"$memory")
tail -2 "$work/import.log"

status=0
[[ "$failed" == 0 ]] || { echo "soak: $failed runs failed, expired or were cancelled" >&2; status=1; }
(( occurred >= expected )) || { echo "soak: only $occurred of $expected occurrences have a run" >&2; status=1; }
awk -v p="$p99" -v m="$max_lateness" 'BEGIN { exit !(p <= m) }' ||
  { echo "soak: p99 lateness $p99 s is over $max_lateness s" >&2; status=1; }
[[ "$growth" == 0 ]] || { echo "soak: a process's memory grew by more than $max_growth %" >&2; status=1; }
(( died == 0 )) || status=1
exit "$status"
