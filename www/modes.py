"""The page's mode selector (issue 14): Boost, Eco (sun), Eco (cheapest), Scheduled, Fixed amps
and Do not charge, each one click, as daemon commands. Boost and Eco keep LennyBo's sequence,
whose night schedule is `[eco]`'s (the tariff's off-peak window by default) and is shown on the
page. `POST /mode` is the form (CSRF-checked); `POST /api/v1/mode` the same for scripts."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, request

from TWCManager.ipc.modes import BOOST, ECO, night_commands, night_schedule

from . import security
from .daemon_link import DaemonUnavailable, commands

bp = Blueprint("modes", __name__)

MODES = ("boost", "eco-solar", "eco-cheapest", "scheduled", "fixed", "off")
LABELS = {"boost": "Boost", "eco-solar": "Eco (sun)", "eco-cheapest": "Eco (cheapest)",
          "scheduled": "Scheduled only", "fixed": "Fixed amps", "off": "Do not charge"}


def night() -> dict:
    from .tariff import tariff_status

    return night_schedule(current_app.extensions["twc"]["cfg"].eco, tariff_status())


def commands_for(mode: str, amps=None) -> list[str]:
    """The daemon commands of a mode; ValueError for an unknown mode or bad amps."""
    wiring = int(current_app.extensions["twc"]["cfg"].twc.wiring_max_amps_all_twcs)
    if mode == "boost":
        return [*night_commands(night()), BOOST]
    if mode in ("eco", "eco-solar", "eco-cheapest"):
        sent = [*night_commands(night()), ECO]
        if mode != "eco":     # LennyBo's Eco keeps the Eco flavour in force
            sent.append(f"setGreenMode={mode.removeprefix('eco-')}")
        return sent
    if mode == "scheduled":
        schedule = night()
        return [ECO, "setNonScheduledAmps=0",
                f"setScheduledAmps={schedule['amps']}\nstartTime={schedule['start']}"
                f"\nendTime={schedule['end']}\ndays=127"]
    if mode == "fixed":
        try:
            value = int(str(amps))
        except ValueError:
            raise ValueError(f"amps {amps!r}: expected a whole number 6..{wiring}") from None
        if not 6 <= value <= wiring:
            raise ValueError(f"amps {value}: expected 6..{wiring} (the wiring limit)")
        return [ECO, f"setNonScheduledAmps={value}"]
    if mode == "off":
        return [ECO, "setNonScheduledAmps=0", "setScheduledAmps=-1\nstartTime=-1:00"
                "\nendTime=-1:00\ndays=127", "chargeGoalCancel"]
    raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")


@bp.post("/mode")
def post_form():
    security.check_csrf()
    mode = request.form.get("mode", "")
    try:
        commands(*commands_for(mode, request.form.get("amps")))
    except ValueError as exc:
        flash(f"Mode: {exc}")
    else:
        flash(f"Mode: {LABELS[mode]}")
    return redirect("/", 303)


@bp.errorhandler(DaemonUnavailable)
def _unavailable(exc):
    flash(f"Mode: nothing changed, TWCManager is not responding ({exc})")
    return redirect("/", 303)
