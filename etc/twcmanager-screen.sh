#!/bin/sh
# Started by rc.local inside a detached screen session named TWCManager, as the
# service user (the seed's way). Restarts the daemon if it dies, and runs the web
# pages beside it. See the daemon with: sudo -u twcmanager screen -r TWCManager
LOG="@LOG@/screen.log"
( while true; do
    "@BIN@/twcmanager-web" --config @ETC@/twcmanager.toml >>"@LOG@/web.log" 2>&1
    echo "$(date '+%F %T') twcmanager-web exited ($?); restarting in 3 s" >>"$LOG"
    sleep 3
  done ) &
while true; do
    "@BIN@/twcmanager" --config @ETC@/twcmanager.toml 2>&1 | tee -a "$LOG"
    echo "$(date '+%F %T') twcmanager exited; restarting in 3 s" | tee -a "$LOG"
    sleep 3
done
