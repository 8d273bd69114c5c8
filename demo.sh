#!/usr/bin/env bash
# The demo: the daemon against a simulated TWC with a charging car, no hardware.
set -euo pipefail
cd "$(dirname "$0")"
python=$(scripts/bootstrap.sh requirements.txt)
exec "$python" -m TWCManager --demo "$@"
