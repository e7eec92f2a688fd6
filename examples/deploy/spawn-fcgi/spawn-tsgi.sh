#!/bin/sh
# Starts `tsgi fcgi` under spawn-fcgi (Debian package spawn-fcgi): spawn-fcgi
# creates the unix socket, hands it to tsgi as fd 0 and, started as root, runs
# tsgi as an unprivileged user. Put nginx in front with ../nginx/tsgi.conf.
# Replace the @...@ placeholders (see README.md).
NODE='@NODE@'
TSGI='@TSGI@'
APP='@APP@'
SOCKET='@SOCKET@'
PIDFILE='@PIDFILE@'
# tsgi's log lines and application errors; APP_USER must be able to append to it.
LOG='@LOG@'
# The user tsgi runs as, and the group of the socket (the web server's).
APP_USER='@USER@'
WEB_GROUP='@WEB_GROUP@'

for file in "$NODE" "$TSGI" "$APP"; do
  [ -r "$file" ] || { echo "spawn-tsgi: $file not found (check the paths at the top of $0)" >&2; exit 1; }
done

# -M 0660 with -U/-G: only tsgi's user and the web server's group may connect.
# spawn-fcgi forks, writes tsgi's PID to $PIDFILE and returns (add -n to stay in
# the foreground under a supervisor). The forked tsgi gets /dev/null as stdout
# and stderr, so `sh -c` sends its stderr to $LOG, then becomes tsgi (same PID).
exec spawn-fcgi -s "$SOCKET" -M 0660 -U "$APP_USER" -G "$WEB_GROUP" -u "$APP_USER" -P "$PIDFILE" "$@" \
  -- /bin/sh -c 'exec "$@" 2>>"$0"' "$LOG" "$NODE" "$TSGI" fcgi "$APP"
