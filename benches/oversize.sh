#!/usr/bin/env bash
# The web process's memory while an operator tests and imports hostile files: a 1 GB file of one
# line, and a 1 GB CSV whose first field opens a quote that never closes. Each is added as a
# source through the form, tested with "Test source", then imported by "Import now" in the same
# `isinbeat serve` process; the script prints what each said and the process's peak RSS.
#
#   ISINBEAT_BIN=target/release/isinbeat benches/oversize.sh [MB]     (default 1024)
#
# Needs curl; writes the files (2 × MB) in a temporary folder, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh

mb="${1:-1024}"
bin="${ISINBEAT_BIN:-target/release/isinbeat}"
work="$(mktemp -d)"
server=""
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "writing two files of $mb MB in $work"
{ printf 'LEI,ISIN\n'; head -c "$((mb << 20))" /dev/zero | tr '\0' 'x'; } >"$work/one-line.csv"
# `yes` ends by SIGPIPE when head has enough, which pipefail would take for a failure.
{ printf 'US0378331005:"an opened quote\n'; yes 'a line inside the quote that never closes' | head -c "$((mb << 20))" || true; } \
  >"$work/quote.csv"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
password="oversize bench password"
DATABASE_URL="$work/isinbeat.sqlite3" ISINBEAT_BIND="127.0.0.1:$port" ISINBEAT_SEED=none \
  ISINBEAT_ADMIN_PASSWORD="$password" ISINBEAT_SOURCE_DIRS="$work" ISINBEAT_LOG=warn \
  "$bin" serve >"$work/serve.log" 2>&1 &
server=$!
base="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.2; done
jar="$work/jar"
admin_login "$base" "$jar" admin "$password" >/dev/null

for file in one-line.csv quote.csv; do
  format=gleif_isin_lei options=""
  if [[ $file == quote.csv ]]; then
    format=csv options='{"isin_column": "1", "header": false, "delimiter": ":"}'
  fi
  token=$(csrf_token "$base" "$jar" /admin/sources/new)
  page=$(curl -s -b "$jar" -c "$jar" -o /dev/null -w '%{redirect_url}' --data-urlencode "csrf_token=$token" \
    --data-urlencode "name=$file" --data-urlencode "url=$work/$file" --data-urlencode "format=$format" \
    --data-urlencode "options=$options" --data-urlencode "max_shrink_percent=20" \
    --data-urlencode "enabled=on" "$base/admin/sources/new")
  token=$(csrf_token "$base" "$jar" "${page#"$base"}")
  start=$(date +%s.%N)
  said=$(curl -s -b "$jar" --data-urlencode "csrf_token=$token" "${page}test" |
    grep -o 'id="test-error">[^<]*' | head -1 | sed 's/.*">//')
  printf '%s: Test source in %.1f s: %s\n' "$file" "$(echo "$(date +%s.%N) - $start" | bc)" "$said"
  run=$(curl -s -b "$jar" -o /dev/null -w '%{redirect_url}' --data-urlencode "csrf_token=$token" "${page}import")
  for _ in $(seq 600); do
    status=$(curl -s -b "$jar" "$run" | grep -o 'class="status status-[a-z]*"' | head -1 | sed 's/.*status-//;s/"//')
    [[ $status == failed || $status == succeeded ]] && break
    sleep 0.5
  done
  printf '%s: the run %s: %s\n' "$file" "$status" \
    "$(curl -s -b "$jar" "$run" | grep -o 'line [0-9]* is longer[^<]*\|the record that starts[^<]*' | head -1)"
done
grep VmHWM "/proc/$server/status" | awk '{ printf "web process peak RSS: %.1f MB\n", $2 / 1024 }'
