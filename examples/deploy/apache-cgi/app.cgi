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

# Node reserves about 512 MiB of address space for compiled code at start, so
# under a host's memory limit (Apache RLimitMEM, `ulimit -v`) below about 1 GiB
# it dies before the application runs ("Failed to reserve virtual memory for
# CodeRange"). Without a JIT it needs none of that, and a CGI process serves
# one request, so it starts about as fast.
limit=$(ulimit -v 2>/dev/null)
case "$limit" in
  '' | unlimited | *[!0-9]*) ;;
  *)
    if [ "$limit" -lt 1048576 ]; then
      echo "tsgi: address space limited to $((limit / 1024)) MiB (RLimitMEM or ulimit -v): starting node with --jitless --no-expose-wasm; give CGI 1 GiB or more to run it with its JIT" >&2
      exec "$NODE" --jitless --no-expose-wasm "$TSGI" cgi "$APP"
    fi
    ;;
esac

exec "$NODE" "$TSGI" cgi "$APP"
