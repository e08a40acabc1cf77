#!/usr/bin/env bash
# The Django admin counterpart of benches/browse.sh: the same data files, the same wrk runs, a
# stock Django admin under gunicorn (2 sync workers, like the 2 cores) with a logged-in session.
#
#   benches/django/run.sh ROWS_ZIP [NAMES_CSV]
#
# ROWS_ZIP is a GLEIF-format zip, NAMES_CSV a Xetra-format CSV (e.g. made by
# `cargo bench --bench import -- gen ROWS FILE` and `-- gen-names N FILE`).
# DJANGO_DB: SQLite file path (default /tmp/django-bench.sqlite3) or postgres://…/NAME, which
# is emptied first. KEEP_DATA=1 reuses a loaded database. DURATION: seconds per wrk run (10).
# DEEP_PAGE: page number of the deep page (5000; needs 250,000 rows). PORT: gunicorn's port.
set -euo pipefail
cd "$(dirname "$0")"
rows_zip="$(realpath "${1:?usage: run.sh ROWS_ZIP [NAMES_CSV]}")"
names_csv="${2:+$(realpath "$2")}"
export DJANGO_DB="${DJANGO_DB:-/tmp/django-bench.sqlite3}" DJANGO_SETTINGS_MODULE=benchsite.settings
venv="${DJANGO_VENV:-/tmp/django-venv}"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/pip" install -q -r requirements.txt
py="$venv/bin/python"

if [[ "${KEEP_DATA:-}" != 1 ]]; then
  # Start from an empty database, like browse.sh, so that a rerun loads the same thing.
  if [[ "$DJANGO_DB" == postgres* ]]; then
    "$py" manage.py shell -v0 -c "from django.db import connection; connection.cursor().execute('DROP SCHEMA public CASCADE; CREATE SCHEMA public')"
  else
    rm -f "$DJANGO_DB" "$DJANGO_DB-wal" "$DJANGO_DB-shm" "$DJANGO_DB-journal"
  fi
fi
"$py" manage.py migrate -v0
[[ "${KEEP_DATA:-}" == 1 ]] || "$py" manage.py load_isins "$rows_zip" ${names_csv:+"$names_csv"}

port="${PORT:-$(( 20000 + RANDOM % 20000 ))}"
base="http://127.0.0.1:$port"
"$venv/bin/gunicorn" -w 2 -b "127.0.0.1:$port" benchsite.wsgi --log-level warning &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null "$base/admin/login/" && break; sleep 0.2; done

cookie="sessionid=$("$py" manage.py bench_session)"
deep="${DEEP_PAGE:-5000}"
# The change page of the first ISIN of the deep page (or the last ISIN if there are fewer).
isin=$("$py" manage.py shell -v0 -c "
from isins.models import Isin
n = Isin.objects.count()
print(Isin.objects.order_by('isin').values_list('isin', flat=True)[min(($deep - 1) * 50, n - 1)])")

measure() { # NAME CONNECTIONS PATH
  local status
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "$base$3")
  [[ "$status" == 200 ]] || { echo "$1: HTTP $status for $3" >&2; exit 1; }
  wrk -t"$2" -c"$2" -d"${DURATION:-10}s" --latency -H "Cookie: $cookie" "$base$3" |
    awk -v name="$1" -v c="$2" '
      /Requests\/sec/ { rps = $2 }
      $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
      /Non-2xx/ { bad = $NF }
      END {
        printf "| %s | %d | %.0f | %s | %s |\n", name, c, rps, p50, p99
        if (bad) printf "%s: %s non-2xx/3xx responses\n", name, bad > "/dev/stderr"
      }'
}
echo "| page | connections | req/s | p50 | p99 |"
echo "|---|---|---|---|---|"
measure "list page 1" 1 "/admin/isins/isin/"
measure "list page 1" 2 "/admin/isins/isin/"
measure "deep page (p=$deep)" 1 "/admin/isins/isin/?p=$deep"
measure "prefix search US0378" 1 "/admin/isins/isin/?q=US0378"
measure "name search, 2 words" 1 "/admin/isins/isin/?q=alpineorchard+summitalpine"
measure "country filter DE" 1 "/admin/isins/isin/?country__exact=DE"
measure "change page" 1 "/admin/isins/isin/$isin/change/"
