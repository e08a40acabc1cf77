# shellcheck shell=bash
# Shell helpers the benchmark scripts source (not run on its own).

# Logs in to the admin at BASE as USER with PASSWORD through the login form, as a person does
# (the form's CSRF token, then the form), keeping the cookies in the file JAR. Prints the session
# cookie as a `Cookie:` header value (`isinbeat_session=…`), or fails.
#
#   cookie=$(admin_login "$base" "$jar" bench "$password")
admin_login() {
  local base="$1" jar="$2" user="$3" password="$4" token cookie
  rm -f "$jar"
  token=$(csrf_token "$base" "$jar" /login)
  curl -s -b "$jar" -c "$jar" -o /dev/null --data-urlencode "csrf_token=$token" \
    --data-urlencode "username=$user" --data-urlencode "password=$password" "$base/login"
  cookie="$(awk '$6 == "isinbeat_session" { print $6 "=" $7 }' "$jar")"
  [[ -n "$cookie" ]] || { echo "login as $user at $base failed" >&2; return 1; }
  printf '%s\n' "$cookie"
}

# The CSRF token of the form on page PATH, fetched with the cookies in JAR.
csrf_token() {
  local base="$1" jar="$2" path="$3"
  curl -s -b "$jar" -c "$jar" "$base$path" | grep -o 'name="csrf_token" value="[^"]*"' | head -1 |
    sed 's/.*value="//;s/"$//'
}

# Creates an API token named NAME on the account page of the user logged in with the cookies in
# JAR, as a person does (the page's form), and prints its secret (`isb_…`), or fails.
#
#   secret=$(api_token "$base" "$jar" bench)
api_token() {
  local base="$1" jar="$2" name="$3" token secret
  token=$(csrf_token "$base" "$jar" /admin/account/)
  secret=$(curl -s -b "$jar" --data-urlencode "csrf_token=$token" --data-urlencode "name=$name" \
    "$base/admin/account/tokens" | grep -o 'isb_[A-Za-z0-9]*' | head -1)
  [[ -n "$secret" ]] || { echo "no API token could be created at $base" >&2; return 1; }
  printf '%s\n' "$secret"
}
