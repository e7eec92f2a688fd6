#!/bin/sh
# The FastCGI program mod_fcgid starts: it execs `tsgi fcgi` on your application,
# which then serves request after request on the socket mod_fcgid passes as fd 0.
# Replace the three @...@ placeholders with absolute paths (see README.md).
NODE='@NODE@'
TSGI='@TSGI@'
APP='@APP@'

# mod_fcgid puts the program's stderr in Apache's error log. Without these
# checks a wrong path shows there only as "End of script output before headers".
fail() {
  echo "tsgi: $1" >&2
  exit 1
}

[ -x "$NODE" ] || fail "node not found at $NODE (set NODE in $0 to the output of \`command -v node\`)"
[ -r "$TSGI" ] || fail "tsgi not found at $TSGI (set TSGI in $0 to .../node_modules/tsgi/bin/tsgi.js)"
[ -r "$APP" ] || fail "application module $APP is missing or not readable by $(id -un)"

# No --listen: the listening socket is fd 0. tsgi serves many requests at once,
# but mod_fcgid sends each process one at a time and starts more processes for more.
exec "$NODE" "$TSGI" fcgi "$APP"
