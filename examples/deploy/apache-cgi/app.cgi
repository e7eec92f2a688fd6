#!/bin/sh
# The CGI script Apache runs for each request: it starts Node with `tsgi cgi`
# and your application module. Replace the three @...@ placeholders with
# absolute paths (see README.md), then make this file executable (chmod 755).
NODE='@NODE@'
TSGI='@TSGI@'
APP='@APP@'

# A line on stderr lands in Apache's error log; the CGI response on stdout
# gives the visitor a plain 500 rather than Apache's "premature end of script".
fail() {
  echo "tsgi: $1" >&2
  printf 'Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nInternal Server Error\n'
  exit 1
}

[ -x "$NODE" ] || fail "node not found at $NODE (set NODE in $0 to the output of \`command -v node\`)"
[ -r "$TSGI" ] || fail "tsgi not found at $TSGI (set TSGI in $0 to .../node_modules/tsgi/bin/tsgi.js)"
[ -r "$APP" ] || fail "application module $APP is missing or not readable by $(id -un)"

exec "$NODE" "$TSGI" cgi "$APP"
