"""JSON API for integrations (Home Assistant, scripts): the modular TWCManager's
shapes, with numbers as numbers (peers.md §3)."""
from __future__ import annotations

import json
import math
from typing import NoReturn

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from TWCManager.twc.messages import STATE_NAMES

from . import security
from .daemon_link import DaemonUnavailable, commands, get_status_json, query_json

bp = Blueprint("api", __name__)



@bp.errorhandler(DaemonUnavailable)
def _unavailable(exc):
    return jsonify(error="TWCManager is not responding", detail=str(exc)), 503


@bp.get("/getStatus")
def get_status():
    data = get_status_json()
    slaves = data.get("slaves", [])
    charging = [s for s in slaves if s["actual_amps"] >= 1.0]
    load_amps = round(sum(s["actual_amps"] for s in slaves), 2)
    # Watts per amp = volts x phases (decisions §4.15); a bare 230 undercounts 3-phase by 3x.
    watts_per_amp = (data.get("watts_per_amp")
                     or current_app.extensions["twc"]["cfg"].green.watts_per_amp)
    green = data.get("green") or {}
    return jsonify(
        carsCharging=len(charging),
        chargerLoadAmps=load_amps,
        chargerLoadWatts=round(load_amps * watts_per_amp, 1),
        maxAmpsToDivideAmongSlaves=data["pool_amps"],
        currentPolicy=data["pool_source"],
        policyReason=data["pool_reason"],
        isGreenPolicy="Yes" if data["pool_source"] == "green" else "No",
        chargeNowAmps=data["charge_now_amps"],
        chargeNowTimeEnd=data["charge_now_until"],
        nonScheduledAmpsMax=data["non_scheduled_amps"],
        scheduledAmpsMax=data["scheduled_amps"],
        scheduledChargingStartTime=data["scheduled_start"],
        scheduledChargingEndTime=data["scheduled_end"],
        scheduledChargingDaysBitmap=data["scheduled_days_bitmap"],
        resumeTrackGreenEnergyTime=data["resume_green_at"],
        wiringMaxAmpsAllTWCs=data["wiring_max_amps_all_twcs"],
        minAmpsPerTWC=data["min_amps_per_twc"],
        rs485LinkUp=data.get("link", {}).get("up"),
        currentServerTime=data["server_time"],
        # The sun, as the modular TWCManager names it, plus our source state (issue 5).
        generationWatts=green.get("solar_w"),
        consumptionWatts=green.get("house_w"),
        gridWatts=green.get("grid_w"),
        greenSourceState=green.get("state"),
        greenLastReadingTime=green.get("last_reading_at"),
    )


@bp.get("/getGreenStatus")
def get_green_status():
    """Grid, solar, house and car watts, the last reading's time and the source state."""
    return jsonify(query_json("getGreenStatus"))


@bp.get("/getInverterStatus")
def get_inverter_status():
    """The PI30's figures (none when stale), state and asked changes; null without one."""
    return jsonify(query_json("getInverterStatus"))


@bp.get("/getTariffStatus")
def get_tariff_status():
    """Tempo today and tomorrow (colour, source, when learnt; the assumption while unknown),
    the period and price now; null without a tariff."""
    return jsonify(query_json("getTariffStatus"))


@bp.get("/getState")
def get_state():
    """/api/v1/state for the dashboard (the same JSON; basic auth like the pages, no token)."""
    from TWCManager.ipc.state_v1 import api_state

    return jsonify(api_state(get_status_json()))


@bp.get("/getHistory")
def get_history():
    """One point a minute for the last `hours` (1..720, default 24) and the daily totals."""
    hours = request.args.get("hours", "24")
    if not hours.isdigit() or not 1 <= int(hours) <= 720:
        return jsonify(error="hours must be a whole number 1..720"), 400
    return jsonify(query_json(f"getHistory={int(hours)}"))


@bp.get("/getChargeGoal")
def get_charge_goal():
    """The "N kWh by HH:MM" goal: done and needed kWh, the grid windows and prices; null
    without one."""
    return jsonify(get_status_json().get("charge_goal"))


@bp.get("/getGreenHistory")
def get_green_history():
    """One sample a minute for the last hours: t, solar_w, house_w, car_w, grid_w."""
    return jsonify(query_json("getGreenHistory"))




@bp.get("/getSlaveTWCs")
def get_slave_twcs():
    data = get_status_json()
    out = {}
    for s in data.get("slaves", []):
        volts = s.get("volts") or [None, None, None]
        out[s["twcid"]] = {
            "TWCID": s["twcid"],
            "carsCharging": int(s["actual_amps"] >= 1.0),
            "lastAmpsOffered": s["offered_amps"],
            "reportedAmpsActual": s["actual_amps"],
            "maxAmps": s["max_amps"],
            "state": s["state"],
            "stateName": STATE_NAMES.get(s["state"], "unknown"),
            "version": s["protocol"],
            "lastHeartbeat": s["seconds_since_heard"],
            "lifetimekWh": s["kwh"],
            "voltsPhaseA": volts[0], "voltsPhaseB": volts[1], "voltsPhaseC": volts[2],
        }
    slaves = list(out.values())
    out["total"] = {
        "TWCID": "total",
        "carsCharging": sum(s["carsCharging"] for s in slaves),
        "lastAmpsOffered": sum(s["lastAmpsOffered"] for s in slaves),
        "reportedAmpsActual": round(sum(s["reportedAmpsActual"] for s in slaves), 2),
        "maxAmps": min((s["maxAmps"] for s in slaves), default=0),
        "lifetimekWh": sum(s["lifetimekWh"] or 0 for s in slaves),
    }
    return jsonify(out)


MAX_JSON_BODY_BYTES = 64 * 1024   # chargeNow's body is ~50 bytes


def json_body() -> dict:
    """The request's JSON object, parsed strictly: every malformed body is a 4xx with a
    message, never a 500 (NaN, Infinity, 1e309, deep nesting, huge bodies)."""
    # JSON only: a cross-site HTML form cannot send it without a CORS preflight.
    security.refuse_cross_site()
    if not request.is_json:
        _bad("send a JSON body with Content-Type: application/json")
    if (request.content_length or 0) > MAX_JSON_BODY_BYTES:
        _bad(f"the body is larger than {MAX_JSON_BODY_BYTES} bytes", 413)
    # Read one byte more than allowed: a chunked body has no Content-Length to check.
    raw = request.stream.read(MAX_JSON_BODY_BYTES + 1)
    if len(raw) > MAX_JSON_BODY_BYTES:
        _bad(f"the body is larger than {MAX_JSON_BODY_BYTES} bytes", 413)
    try:
        body = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        _bad("the JSON body is nested too deeply")
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, our refusals, 5000-digit ints
        _bad(f"the body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        _bad("the body is not a JSON object")
    return body


def json_body_optional() -> dict:
    """A command without arguments: no body at all, or a JSON object (checked strictly)."""
    security.refuse_cross_site()
    if not request.content_length and not request.is_json:
        return {}
    return json_body()


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large")
    return value


class BadInput(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@bp.errorhandler(BadInput)
def _bad_input(exc):
    return jsonify(error=str(exc)), exc.status


def _bad(message: str, status: int = 400) -> NoReturn:
    raise BadInput(message, status)


def _positive_int(body: dict, key: str, maximum: int) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value != int(value):
        _bad(f"{key} must be a whole number, got {value!r}")
    if not 0 < value <= maximum:
        _bad(f"{key} must be between 1 and {maximum}, got {value}")
    return int(value)


@bp.post("/chargeNow")
def charge_now():
    body = json_body()
    rate = _positive_int(body, "chargeNowRate", 240)
    duration = _positive_int(body, "chargeNowDuration", 7 * 24 * 3600)
    commands(f"chargeNow={rate},{duration}")
    return jsonify(status="success", rate=rate, duration=duration)


@bp.post("/cancelChargeNow")
def cancel_charge_now():
    security.refuse_cross_site()
    commands("chargeNowCancel")
    return jsonify(status="success")


@bp.route("/<path:_name>", methods=["GET", "POST"])
def unknown(_name):
    # This catch-all also takes a known endpoint asked with the wrong method
    # (GET /api/chargeNow): that is a 405, not an unknown endpoint.
    adapter = current_app.url_map.bind_to_environ(request.environ)
    for method in ("GET", "POST"):
        if method == request.method:
            continue
        try:
            endpoint, _args = adapter.match(request.path, method=method)
        except HTTPException:
            continue
        if endpoint != request.endpoint:
            return jsonify(error=f"{request.path} expects {method}"), 405, {"Allow": method}
    return jsonify(error="unknown API endpoint"), 404
