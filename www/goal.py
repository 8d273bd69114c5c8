""""N kWh by HH:MM" from the web: the dashboard's form (`POST /goal`, CSRF-checked) and
`POST /api/v1/charge_goal` share `set_goal`; the daemon plans the sun first, then the cheapest
grid slots, and its plan is in getStatusJson's `charge_goal`."""
from __future__ import annotations

import math

from flask import Blueprint, flash, redirect, request

from TWCManager.config_checks import HHMM
from TWCManager.settings_file import GOAL_KWH_MAX

from . import security
from .daemon_link import DaemonUnavailable, commands

bp = Blueprint("goal", __name__)



def set_goal(kwh, by) -> str:
    """Send the goal; ValueError for bad input. Returns what was asked, for a person."""
    if isinstance(kwh, str):
        try:
            kwh = float(kwh)
        except ValueError:
            raise ValueError(f"kWh {kwh!r} is not a number") from None
    if isinstance(kwh, bool) or not isinstance(kwh, (int, float)) or not math.isfinite(kwh) \
            or not 0 < kwh <= GOAL_KWH_MAX:
        raise ValueError(f"kwh must be a number of kWh, 0 < kWh <= {GOAL_KWH_MAX}")
    if not isinstance(by, str) or not HHMM.fullmatch(by):
        raise ValueError(f"by {by!r}: expected a time HH:MM (24-hour)")
    commands(f"setChargeGoal={kwh:g},{by}")
    return f"Charge goal: {kwh:g} kWh by {by}"


def cancel_goal() -> str:
    commands("chargeGoalCancel")
    return "Charge goal cancelled"


@bp.post("/goal")
def post_form():
    security.check_csrf()
    try:
        if request.form.get("cancel"):
            flash(cancel_goal())
        else:
            flash(set_goal(request.form.get("kwh", ""), request.form.get("by", "")))
    except ValueError as exc:
        flash(f"Charge goal: {exc}")
    return redirect("/", 303)


@bp.errorhandler(DaemonUnavailable)
def _unavailable(exc):
    flash(f"Charge goal: nothing changed, TWCManager is not responding ({exc})")
    return redirect("/", 303)
