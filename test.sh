#!/usr/bin/env bash
# The one test command (README, .ci/run): builds .venv, then runs pytest.
# Extra arguments go to pytest, e.g. ./test.sh -k codec
set -euo pipefail
cd "$(dirname "$0")"
python=$(scripts/bootstrap.sh requirements-dev.txt)
exec "$python" -m pytest "$@"
