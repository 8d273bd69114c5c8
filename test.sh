#!/usr/bin/env bash
# The one test command (README, .ci/run): builds .venv, then runs pytest.
# Extra arguments go to pytest, e.g. ./test.sh -k codec
set -euo pipefail
cd "$(dirname "$0")"

# System packages. php-cli (with its built-in sysvmsg) runs the old PHP pages' IPC client in
# tests/test_php_interop.py; without it those tests are skipped and say why.
if ! command -v php >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing php-cli for the PHP interop tests" >&2
    apt_log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq php-cli; } \
        >"$apt_log" 2>&1; then
      echo "test.sh: could not install php-cli, so the PHP interop tests will be skipped;" \
           "apt-get said:" >&2
      tail -n 5 "$apt_log" | sed 's/^/  /' >&2
    fi
    rm -f "$apt_log"
  else
    echo "test.sh: php is not installed and this is not root with apt-get;" \
         "the PHP interop tests will be skipped (sudo apt-get install php-cli)" >&2
  fi
fi
# Debian's chromium + chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver) run the
# dashboard in a real browser in tests/test_browser.py; nothing is downloaded by selenium.
# Without them that test is skipped and says why.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing chromium and chromium-driver for the browser test" >&2
    apt_log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
             --no-install-recommends chromium chromium-driver; } >"$apt_log" 2>&1; then
      echo "test.sh: could not install chromium and chromium-driver, so the browser test" \
           "will be skipped; apt-get said:" >&2
      tail -n 5 "$apt_log" | sed 's/^/  /' >&2
    fi
    rm -f "$apt_log"
  else
    echo "test.sh: chromium or chromedriver is not installed and this is not root with" \
         "apt-get; the browser test will be skipped (sudo apt-get install chromium" \
         "chromium-driver)" >&2
  fi
fi
python=$(scripts/bootstrap.sh requirements-dev.txt)
exec "$python" -m pytest "$@"
