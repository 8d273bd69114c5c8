"""`POST /api/v1/…` for the charging commands a user has on the web pages (issue 13): Boost and
Eco (LennyBo's sequence), charge now and its cancel, the non-scheduled amps, the schedule and
the daily resume of green tracking. Each checks its whole body before sending anything (a bad
field sends nothing) and answers with what it sent; the daemon down is a 503.
"""
from __future__ import annotations

import math

from flask import current_app, jsonify

from TWCManager.config_checks import HHMM

from .api import BadInput, json_body, json_body_optional
from .api_v1 import bp
from .daemon_link import commands
from .modes import commands_for

MAX_DURATION_S = 7 * 24 * 3600


def _whole(body: dict, key: str, low: int, high: int) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value != int(value):
        raise BadInput(f"{key} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise BadInput(f"{key} must be between {low} and {high}, got {value:g}")
    return int(value)


def _time(body: dict, key: str, allow_null: bool = False) -> str:
    value = body.get(key)
    if value is None and allow_null:
        return "-1:00"
    if not isinstance(value, str) or not HHMM.fullmatch(value):
        raise BadInput(f"{key} must be a time \"HH:MM\" (24-hour){' or null' if allow_null else ''}"
                       f", got {value!r}")
    return value


def _wiring_amps() -> int:
    return int(current_app.extensions["twc"]["cfg"].twc.wiring_max_amps_all_twcs)


def _done(*sent: str):
    commands(*sent)
    return jsonify(status="done", sent=list(sent))


@bp.post("/boost")
def boost():
    """Charge now at the wiring maximum for 24 h, after LennyBo's Eco settings (as the
    dashboard's Boost button)."""
    json_body_optional()
    return _done(*commands_for("boost"))


@bp.post("/eco")
def eco():
    """Green tracking by day, the night schedule by night (as the dashboard's Eco button)."""
    json_body_optional()
    return _done(*commands_for("eco"))


@bp.post("/mode")
def mode():
    """{"mode": "boost" | "eco-solar" | "eco-cheapest" | "scheduled" | "fixed" | "off",
    "amps": N (fixed only)}: the page's mode selector."""
    body = json_body()
    try:
        return _done(*commands_for(body.get("mode"), body.get("amps")))
    except ValueError as exc:
        raise BadInput(str(exc)) from None


@bp.post("/charge_now")
def charge_now():
    """{"amps": 16, "duration_s": 3600}"""
    body = json_body()
    amps = _whole(body, "amps", 1, _wiring_amps())
    duration_s = _whole(body, "duration_s", 1, MAX_DURATION_S)
    return _done(f"chargeNow={amps},{duration_s}")


@bp.post("/charge_now/cancel")
def charge_now_cancel():
    json_body_optional()
    return _done("chargeNowCancel")


@bp.post("/non_scheduled_amps")
def non_scheduled_amps():
    """{"amps": -1} tracks green energy, 0 does not charge, N charges at N A."""
    amps = _whole(json_body(), "amps", -1, _wiring_amps())
    return _done(f"setNonScheduledAmps={amps}")


@bp.post("/schedule")
def schedule():
    """{"amps": 16, "start": "21:00", "end": "07:00", "days": 127}; amps 0 turns it off.
    days: bit 0 = Sunday … bit 6 = Saturday."""
    body = json_body()
    amps = _whole(body, "amps", 0, _wiring_amps())
    start, end = _time(body, "start"), _time(body, "end")
    days = _whole(body, "days", 0, 127)
    if start == end and amps:
        raise BadInput("start and end are equal: the schedule would be empty")
    return _done(f"setScheduledAmps={amps if amps else -1}\nstartTime={start}\nendTime={end}"
                 f"\ndays={days}")


@bp.post("/resume_green_at")
def resume_green_at():
    """{"time": "06:00"}: every day at that time, back to green tracking; null: never."""
    return _done(f"setResumeTrackGreenEnergyTime={_time(json_body(), 'time', allow_null=True)}")
