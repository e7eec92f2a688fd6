#!/bin/sh
# The FastCGI program lighttpd starts (bin-path in tsgi-fastcgi.conf): it execs
# `tsgi fcgi` on your application, which serves on the socket lighttpd passes as
# fd 0. Replace the @...@ placeholders with absolute paths (see README.md).
NODE='@NODE@'
TSGI='@TSGI@'
APP='@APP@'
# lighttpd's server.errorlog.
ERRORLOG='@ERRORLOG@'

# lighttpd gives its FastCGI programs its own stderr: the journal under
# `lighttpd -D` (systemd), /dev/null when it runs as a daemon; its error log
# shows only "child exited: 1". Append to the error log instead, so tsgi's
# lines (why it could not start, application errors) are next to lighttpd's.
[ -w "$ERRORLOG" ] && exec 2>>"$ERRORLOG"

fail() {
  echo "tsgi: $1" >&2
  exit 1
}

[ -x "$NODE" ] || fail "node not found at $NODE (set NODE in $0 to the output of \`command -v node\`)"
[ -r "$TSGI" ] || fail "tsgi not found at $TSGI (set TSGI in $0 to .../node_modules/tsgi/bin/tsgi.js)"
[ -r "$APP" ] || fail "application module $APP is missing or not readable by $(id -un)"

exec "$NODE" "$TSGI" fcgi "$APP"
