"""`/api/v1/` for Home Assistant and scripts (decisions.md §6.1): `GET state`, and a POST per
command a user has on the web page. JSON bodies are parsed strictly (api.json_body); with
`[web] api_token_file` set, security.BearerToken guards the whole prefix.
"""
from __future__ import annotations

from flask import Blueprint, jsonify

from TWCManager.ipc.state_v1 import api_state

from . import goal, inverter, tariff
from .api import BadInput, json_body, json_body_optional
from .daemon_link import DaemonUnavailable, get_status_json

bp = Blueprint("api_v1", __name__)

# Outcome of an inverter change -> HTTP status: refused or unreachable is the inverter's
# failure (502), not asked-and-waiting (202), and no inverter is the wrong request (409).
OUTCOME_STATUS = {inverter.DONE: 200, inverter.PENDING: 202, inverter.FAILED: 502,
                  inverter.ABSENT: 409}


@bp.errorhandler(DaemonUnavailable)
def _unavailable(exc):
    return jsonify(error="TWCManager is not responding", detail=str(exc)), 503


@bp.errorhandler(BadInput)
def _bad_input(exc):
    return jsonify(error=str(exc)), exc.status


@bp.get("/state")
def state():
    return jsonify(api_state(get_status_json()))


@bp.post("/inverter/output_priority")
def output_priority():
    return _priority("output-priority")


@bp.post("/inverter/charger_priority")
def charger_priority():
    return _priority("charger-priority")


def _priority(what: str):
    value = json_body().get("value")
    if not isinstance(value, str):
        raise BadInput(f'send {{"value": …}} with one of {", ".join(inverter.choices(what))}')
    try:
        outcome = inverter.change_priority(what, value)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    body = {"status": outcome.state, "message": outcome.message}
    if outcome.state in (inverter.FAILED, inverter.ABSENT):
        body["error"] = outcome.message
    return jsonify(body), OUTCOME_STATUS[outcome.state]


@bp.post("/tempo/colour")
def tempo_colour():
    """{"date": "YYYY-MM-DD", "colour": "BLUE" | "WHITE" | "RED" | "auto"}"""
    body = json_body()
    try:
        message = tariff.set_colour(body.get("date"), body.get("colour"))
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    except tariff.NoTempo as exc:
        return jsonify(error=str(exc)), 409
    return jsonify(status="done", message=message, tariff=tariff.tariff_status())


@bp.post("/charge_goal")
def charge_goal():
    """{"kwh": 20, "by": "07:00"}: the sun first, then the cheapest grid slots."""
    body = json_body()
    try:
        message = goal.set_goal(body.get("kwh"), body.get("by"))
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    return jsonify(status="done", message=message,
                   charge_goal=get_status_json().get("charge_goal"))


@bp.post("/charge_goal/cancel")
def charge_goal_cancel():
    json_body_optional()
    return jsonify(status="done", message=goal.cancel_goal())
