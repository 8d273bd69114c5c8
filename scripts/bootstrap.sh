#!/usr/bin/env bash
# Creates .venv in the checkout (Debian refuses system-wide pip) and installs
# the pinned requirements once; re-installs only when a requirements file changes.
# Usage: scripts/bootstrap.sh [requirements-file]   (prints the venv's python path)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
req=${1:-requirements.txt}
venv="$here/.venv"
py=${PYTHON:-python3}

if ! command -v "$py" >/dev/null 2>&1; then
  echo "bootstrap: $py not found; install Python 3.11 or newer (apt-get install python3)" >&2
  exit 1
fi
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: Python 3.11 or newer is needed, found $("$py" --version 2>&1)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  if ! "$py" -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "bootstrap: installing python3-venv" >&2
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
      "$py" -m venv "$venv"
    else
      echo "bootstrap: 'python3 -m venv' failed; run: sudo apt-get install python3-venv" >&2
      exit 1
    fi
  fi
fi
stamp="$venv/.installed-$(basename "$req")"
want=$(cat "$here/requirements.txt" "$here/$req" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing $req into .venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/$req" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
