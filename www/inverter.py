"""Changing the PI30 inverter's priorities from the web: the dashboard's form (`POST /inverter`,
CSRF-checked) and `POST /api/v1/inverter/…` share `change_priority`.

The daemon's poller applies a change between two readings, writes it only when it differs and
reads it back (TWCManager.pi30.source); its outcome appears, under the change's id, in
getInverterStatus. So the page waits for that outcome, up to a deadline, and says what
happened instead of "sent".
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Blueprint, current_app, flash, redirect, request

from TWCManager.pi30.inverter import SETTINGS

from . import security
from .daemon_link import DaemonUnavailable, commands, query_json

bp = Blueprint("inverter", __name__)

IPC_COMMANDS = {"output-priority": "setInverterOutputPriority",
                "charger-priority": "setInverterChargerPriority"}
# At 2400 baud a poll under way (four exchanges) and the change (QPIRI, the setter, QPIRI)
# take ~2 s; with every exchange timing out, 7 × [pi30] timeout_s. App config key for tests.
WAIT_KEY = "INVERTER_CHANGE_WAIT_S"
DEFAULT_WAIT_S = 25.0
POLL_S = 0.25

DONE, FAILED, PENDING, ABSENT = "done", "failed", "pending", "absent"


@dataclass(frozen=True)
class Outcome:
    state: str          # DONE, FAILED, PENDING (not confirmed before the deadline), ABSENT
    message: str


def choices(what: str) -> tuple[str, ...]:
    return SETTINGS[what][2]


def inverter_status() -> dict | None:
    """The daemon's PI30 status, or None when no inverter is configured."""
    return query_json("getInverterStatus")


def change_priority(what: str, value: str) -> Outcome:
    """Ask the daemon for one priority and wait for its outcome. ValueError for a bad value."""
    if what not in IPC_COMMANDS:
        raise ValueError(f"unknown setting {what!r}; expected one of " + ", ".join(IPC_COMMANDS))
    if value not in choices(what):
        raise ValueError(f"{what} {value!r}: expected one of " + ", ".join(choices(what)))
    status = inverter_status()
    if status is None:
        return Outcome(ABSENT, "no PI30 inverter configured ([pi30] port)")
    seen = max((change["id"] for change in status.get("changes", [])), default=0)
    commands(f"{IPC_COMMANDS[what]}={value}")
    deadline = time.monotonic() + current_app.config.get(WAIT_KEY, DEFAULT_WAIT_S)
    while True:
        for change in (inverter_status() or {}).get("changes", []):
            if change["id"] > seen and (change["what"], change["value"]) == (what, value) \
                    and change["state"] != PENDING:
                return Outcome(change["state"], change["message"])
        if time.monotonic() >= deadline:
            return Outcome(PENDING, f"{what} {value} asked; the inverter has not confirmed it "
                                    "yet (see its status in a moment)")
        time.sleep(POLL_S)


@bp.post("/inverter")
def post_form():
    security.check_csrf()
    what, value = request.form.get("what", ""), request.form.get("value", "")
    try:
        outcome = change_priority(what, value)
    except ValueError as exc:
        flash(f"Inverter: {exc}")
    else:
        flash(("Inverter: " if outcome.state != FAILED else "Inverter refused: ")
              + outcome.message)
    return redirect("/", 303)


@bp.errorhandler(DaemonUnavailable)
def _unavailable(exc):
    flash(f"Inverter: nothing changed, TWCManager is not responding ({exc})")
    return redirect("/", 303)
