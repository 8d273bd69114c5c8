#!/usr/bin/env bash
# Installs TWCManager on Raspberry Pi OS Bookworm / Debian 12: one command, idempotent.
#
#   sudo ./install.sh --wiring-amps 32 # set the wiring limit and start (systemd if it runs)
#   sudo ./install.sh                  # install; a new config waits for its wiring limits
#   sudo ./install.sh --boot screen    # the seed's way: a detached screen session from rc.local
#   sudo ./install.sh --boot none      # install only; start it yourself
#   ./install.sh --dest DIR            # stage everything under DIR, touch nothing else
#   sudo ./install.sh --uninstall      # remove it (the config, settings and logs are kept)
#
# A first install starts the service only with --wiring-amps (the amps your breaker and cable
# allow, for all the Wall Connectors together and for each): until the limits are set in
# /etc/twcmanager/twcmanager.toml, it is installed and enabled but not started.
#
# Layout: code and its virtual environment in /opt/twcmanager, the commands `twcmanager`,
# `twcmanager-web`, `twcmanager-ctl`, `solaredge` and `pi30` in /usr/local/bin, the config
# in /etc/twcmanager/twcmanager.toml (an existing one is kept), settings in /var/lib/twcmanager,
# logs in /var/log/twcmanager, all run as the system user `twcmanager` (in group dialout).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
USER_NAME=twcmanager
BOOT=auto
DEST=""
UNINSTALL=0
WIRING_AMPS=""
FRESH_CONFIG=0
PYTHON=${PYTHON:-python3}
MIN_PY="3.11"

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --boot) [ $# -ge 2 ] || die "--boot needs systemd, screen or none"; BOOT=$2; shift 2 ;;
        --boot=*) BOOT=${1#--boot=}; shift ;;
        --dest) [ $# -ge 2 ] || die "--dest needs a directory"; DEST=$2; shift 2 ;;
        --dest=*) DEST=${1#--dest=}; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --wiring-amps) [ $# -ge 2 ] || die "--wiring-amps needs a number of amps"; WIRING_AMPS=$2; shift 2 ;;
        --wiring-amps=*) WIRING_AMPS=${1#--wiring-amps=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
case "$BOOT" in auto|systemd|screen|none) ;; *) die "--boot must be systemd, screen or none, not '$BOOT'" ;; esac
if [ -n "$WIRING_AMPS" ]; then
    case "$WIRING_AMPS" in
        *[!0-9]*) die "--wiring-amps must be a whole number of amps (6..80), not '$WIRING_AMPS'" ;;
    esac
    if [ "$WIRING_AMPS" -lt 6 ] || [ "$WIRING_AMPS" -gt 80 ]; then
        die "--wiring-amps must be 6..80 (a Gen2 Wall Connector's range), not $WIRING_AMPS"
    fi
fi

if [ -n "$DEST" ]; then
    mkdir -p "$DEST" || die "cannot create $DEST"
    DEST=$(cd "$DEST" && pwd)
    STAGED=1
else
    STAGED=0
    [ "$(id -u)" -eq 0 ] || die "run as root (sudo ./install.sh), or stage with --dest DIR"
fi

OPT="$DEST/opt/twcmanager"
BIN="$DEST/usr/local/bin"
ETC="$DEST/etc/twcmanager"
VARLIB="$DEST/var/lib/twcmanager"
VARLOG="$DEST/var/log/twcmanager"
UNITS="$DEST/etc/systemd/system"
UDEV="$DEST/etc/udev/rules.d"
RCLOCAL="$DEST/etc/rc.local"
RC_BEGIN="# BEGIN twcmanager (install.sh)"
RC_END="# END twcmanager (install.sh)"

if [ "$BOOT" = auto ]; then
    if [ "$STAGED" -eq 0 ] && [ -d /run/systemd/system ]; then BOOT=systemd
    elif [ "$STAGED" -eq 1 ]; then BOOT=systemd  # stage the units; nothing is started
    else BOOT=screen
    fi
fi

remove_rc_block() {
    [ -f "$RCLOCAL" ] || return 0
    sed -i "/^$RC_BEGIN\$/,/^$RC_END\$/d" "$RCLOCAL"
}

if [ "$UNINSTALL" -eq 1 ]; then
    if [ "$STAGED" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now twcmanager.service twcmanager-web.service 2>/dev/null || true
    fi
    if [ "$STAGED" -eq 0 ] && command -v screen >/dev/null 2>&1; then
        su -s /bin/sh "$USER_NAME" -c "screen -S TWCManager -X quit" 2>/dev/null || true
    fi
    rm -f "$UNITS/twcmanager.service" "$UNITS/twcmanager-web.service" \
          "$UDEV/99-twcmanager.rules" \
          "$BIN/twcmanager" "$BIN/twcmanager-web" "$BIN/twcmanager-ctl" "$BIN/solaredge" \
          "$BIN/pi30" "$BIN/twcmanager-screen"
    remove_rc_block
    rm -rf "$OPT"
    if [ "$STAGED" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
        systemctl daemon-reload || true
    fi
    say "removed. Kept: $ETC (config), $VARLIB (settings), $VARLOG (logs) and user $USER_NAME."
    exit 0
fi

# ------------------------------------------------------------------ checks
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: apt-get install python3 python3-venv"
"$PYTHON" - "$MIN_PY" <<'EOF' || die "Python $MIN_PY or newer is needed, found $("$PYTHON" --version 2>&1)"
import sys
need = tuple(int(x) for x in sys.argv[1].split("."))
sys.exit(0 if sys.version_info[:2] >= need else 1)
EOF

if [ "$STAGED" -eq 0 ]; then
    missing=()
    "$PYTHON" -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
    [ "$BOOT" = screen ] && ! command -v screen >/dev/null 2>&1 && missing+=(screen)
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        apt-get update -qq || die "apt-get update failed (no network?)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" \
            || die "apt-get install ${missing[*]} failed"
    fi
fi

# ------------------------------------------------------------------- code
say "installing the code into $OPT"
mkdir -p "$OPT" "$BIN" "$ETC" "$VARLIB" "$VARLOG"
for part in TWCManager www; do
    rm -rf "$OPT/$part.new"
    cp -r "$SRC/$part" "$OPT/$part.new"
    find "$OPT/$part.new" -name '__pycache__' -prune -exec rm -rf {} +
    rm -f "$OPT/$part.new/TWCManagerSettings.txt"
    rm -rf "${OPT:?}/$part"
    mv "$OPT/$part.new" "$OPT/$part"
done
cp "$SRC/requirements.txt" "$OPT/requirements.txt"

if [ ! -x "$OPT/venv/bin/python" ]; then
    "$PYTHON" -m venv "$OPT/venv" || die "could not create the virtual environment $OPT/venv"
fi
stamp="$OPT/venv/.requirements.sha256"
want=$(sha256sum "$OPT/requirements.txt" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing the pinned packages (requirements.txt) into $OPT/venv"
    "$OPT/venv/bin/python" -m pip install -q --disable-pip-version-check -r "$OPT/requirements.txt" \
        || die "pip install failed; see the messages above (network? disk space?)"
    echo "$want" > "$stamp"
fi

# Commands on PATH: small wrappers that run the venv's interpreter from /opt/twcmanager.
write_wrapper() {  # name module
    cat > "$BIN/$1" <<EOF
#!/bin/sh
PYTHONPATH="$OPT\${PYTHONPATH:+:\$PYTHONPATH}" exec "$OPT/venv/bin/python" -m $2 "\$@"
EOF
    chmod 755 "$BIN/$1"
}
write_wrapper twcmanager TWCManager
write_wrapper twcmanager-web www
write_wrapper twcmanager-ctl TWCManager.ctl
write_wrapper solaredge TWCManager.solaredge
write_wrapper pi30 TWCManager.pi30

# ----------------------------------------------------------------- config
if [ -f "$ETC/twcmanager.toml" ]; then
    say "keeping the existing $ETC/twcmanager.toml"
else
    # The checkout's defaults, with the installed paths filled in. Port 80 needs the
    # systemd unit's CAP_NET_BIND_SERVICE; the screen way stays on 8080 (no root).
    web_port=8080
    [ "$BOOT" = systemd ] && web_port=80
    cp "$SRC/etc/twcmanager.toml" "$ETC/twcmanager.toml.new"
    "$PYTHON" - "$ETC/twcmanager.toml.new" "$web_port" "$WIRING_AMPS" <<'EOF'
import re, sys
path, web_port, wiring_amps = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
def set_key(section, key, value):
    global text
    pattern = re.compile(r"(\[%s\][^\[]*?^%s\s*=\s*)[^\n]*" % (section, key), re.S | re.M)
    text, n = pattern.subn(lambda m: m.group(1) + value, text, count=1)
    if not n:
        raise SystemExit(f"install.sh: [{section}] {key} not found in the default config")
set_key("twc", "serial_port", '"/dev/ttyTWC"')
set_key("settings", "file", '"/var/lib/twcmanager/TWCManagerSettings.txt"')
set_key("log", "file", '"/var/log/twcmanager/twcmanager.log"')
set_key("web", "port", web_port)
if wiring_amps:
    set_key("twc", "wiring_max_amps_all_twcs", wiring_amps)
    set_key("twc", "wiring_max_amps_per_twc", wiring_amps)
open(path, "w").write(text)
EOF
    mv "$ETC/twcmanager.toml.new" "$ETC/twcmanager.toml"
    FRESH_CONFIG=1
    if [ -n "$WIRING_AMPS" ]; then
        say "wrote $ETC/twcmanager.toml with a wiring limit of $WIRING_AMPS A"
    else
        say "wrote $ETC/twcmanager.toml"
    fi
fi

# ------------------------------------------------------------------ udev
mkdir -p "$UDEV"
cp "$SRC/etc/udev/99-twcmanager.rules" "$UDEV/99-twcmanager.rules"

# ------------------------------------------------------------------ boot
mkdir -p "$UNITS"
if [ "$BOOT" = systemd ]; then
    for unit in twcmanager.service twcmanager-web.service; do
        sed -e "s|@OPT@|$OPT|g" -e "s|@BIN@|$BIN|g" -e "s|@ETC@|$ETC|g" -e "s|@USER@|$USER_NAME|g" \
            "$SRC/etc/systemd/$unit" > "$UNITS/$unit"
    done
    remove_rc_block
elif [ "$BOOT" = screen ]; then
    sed -e "s|@BIN@|$BIN|g" -e "s|@LOG@|$VARLOG|g" -e "s|@ETC@|$ETC|g" \
        "$SRC/etc/twcmanager-screen.sh" > "$BIN/twcmanager-screen"
    chmod 755 "$BIN/twcmanager-screen"
    [ -f "$RCLOCAL" ] || printf '#!/bin/sh -e\n\nexit 0\n' > "$RCLOCAL"
    remove_rc_block
    # Before the final "exit 0", as the seed's recipe: run as the service user, not root.
    block="$RC_BEGIN
su -s /bin/sh $USER_NAME -c \"screen -dmS TWCManager $BIN/twcmanager-screen\"
$RC_END"
    awk -v block="$block" '
        /^exit 0/ && !done { print block; done = 1 }
        { print }
        END { if (!done) print block }' "$RCLOCAL" > "$RCLOCAL.new"
    mv "$RCLOCAL.new" "$RCLOCAL"
    chmod 755 "$RCLOCAL"
    rm -f "$UNITS/twcmanager.service" "$UNITS/twcmanager-web.service"
fi

# ------------------------------------------------- user, ownership, start
if [ "$STAGED" -eq 1 ]; then
    say "staged under $DEST (no user, udev or service changes outside it)"
    exit 0
fi

if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/twcmanager --shell /usr/sbin/nologin "$USER_NAME" \
        || die "useradd $USER_NAME failed"
fi
usermod -a -G dialout "$USER_NAME" || die "could not add $USER_NAME to group dialout"
chown -R "$USER_NAME:$USER_NAME" "$VARLIB" "$VARLOG"
chown root:"$USER_NAME" "$ETC/twcmanager.toml"
chmod 640 "$ETC/twcmanager.toml"
if command -v udevadm >/dev/null 2>&1; then
    udevadm control --reload-rules || true
    udevadm trigger --subsystem-match=tty || true
    udevadm trigger --subsystem-match=hidraw || true
fi

if [ "$FRESH_CONFIG" -eq 1 ] && [ -z "$WIRING_AMPS" ] && [ "$BOOT" != none ]; then
    # Never drive a charger with a guessed limit: the service waits for the user's.
    if [ "$BOOT" = systemd ]; then
        systemctl daemon-reload
        systemctl enable twcmanager.service twcmanager-web.service
    fi
    say "installed, NOT started: set [twc] wiring_max_amps_all_twcs and wiring_max_amps_per_twc"
    say "  (the amps your breaker and cable allow) in $ETC/twcmanager.toml, then start it:"
    if [ "$BOOT" = systemd ]; then
        say "  sudo systemctl start twcmanager twcmanager-web"
    else
        say "  sudo ./install.sh --boot screen   (again; the config is kept)"
    fi
elif [ "$BOOT" = systemd ]; then
    systemctl daemon-reload
    systemctl enable twcmanager.service twcmanager-web.service
    systemctl restart twcmanager.service twcmanager-web.service
    say "running: systemctl status twcmanager twcmanager-web; logs: journalctl -u twcmanager -f"
elif [ "$BOOT" = screen ]; then
    su -s /bin/sh "$USER_NAME" -c "screen -S TWCManager -X quit" 2>/dev/null || true
    su -s /bin/sh "$USER_NAME" -c "screen -dmS TWCManager $BIN/twcmanager-screen"
    say "running in screen session TWCManager (sudo -u $USER_NAME screen -r TWCManager)"
else
    say "installed; start it with: sudo -u $USER_NAME twcmanager  and  twcmanager-web"
fi
