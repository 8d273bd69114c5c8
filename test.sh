#!/usr/bin/env bash
# The one test command (README, .ci/run): installs the Debian packages the edge tests
# use (when root), builds .venv, then runs pytest. Extra arguments go to pytest,
# e.g. ./test.sh -k codec
set -euo pipefail
cd "$(dirname "$0")"

apt_updated=0
# need_package WHAT CHECK PACKAGE...: install PACKAGEs unless CHECK succeeds. Without
# root the tests that need them are skipped, each with its reason.
need_package() {
  local what=$1 check=$2
  shift 2
  if eval "$check" >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: $* not installed and this is not root with apt-get; $what will be" \
         "skipped (sudo apt-get install $*)" >&2
    return 0
  fi
  echo "test.sh: installing $* for $what" >&2
  local apt_log
  apt_log=$(mktemp)
  if ! { { [ "$apt_updated" = 1 ] || apt-get update -qq; } &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } \
      >"$apt_log" 2>&1; then
    echo "test.sh: could not install $*, so $what will be skipped; apt-get said:" >&2
    tail -n 5 "$apt_log" | sed 's/^/  /' >&2
  fi
  apt_updated=1
  rm -f "$apt_log"
}

# php-cli (its sysvmsg is built in) runs the old PHP pages' IPC client.
need_package "the PHP interop tests" "command -v php" php-cli
# A real MQTT broker for the MQTT tests (the daemon's Home Assistant discovery).
need_package "the MQTT tests" "command -v mosquitto || [ -x /usr/sbin/mosquitto ]" mosquitto
# Debian's chromium + chromium-driver run the dashboard in a real browser; nothing is
# downloaded by selenium.
need_package "the browser test" "[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]" \
  chromium chromium-driver
need_package "the shell script lint test" "command -v shellcheck" shellcheck

python=$(scripts/bootstrap.sh requirements-dev.txt)
exec "$python" -m pytest "$@"
