"""The Tempo colour override from the web: the dashboard's form (`POST /tempo`, CSRF-checked)
and `POST /api/v1/tempo/colour` share `set_colour`. The daemon keeps the override apart from
what RTE said, so "auto" brings RTE's colour back."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, redirect, request

from TWCManager.tariff.tempo import COLOURS

from . import security
from .daemon_link import DaemonUnavailable, commands, query_json

bp = Blueprint("tariff", __name__)

AUTO = "auto"


class NoTempo(Exception):
    """No Tempo tariff is configured."""


def tariff_status() -> dict | None:
    return query_json("getTariffStatus")


def set_colour(day_text: str, colour_text: str) -> str:
    """Send the override; ValueError for bad input, NoTempo without a Tempo tariff. Returns
    what was done, for a person."""
    try:
        day = date.fromisoformat(day_text)
    except (TypeError, ValueError):
        raise ValueError(f"date {day_text!r}: expected YYYY-MM-DD") from None
    colour = colour_text.upper() if isinstance(colour_text, str) else colour_text
    if colour not in (*COLOURS, AUTO.upper()):
        raise ValueError(f"colour {colour_text!r}: expected one of {', '.join(COLOURS)} or auto")
    if tariff_status() is None:
        raise NoTempo('no Tempo tariff configured ([tariff] kind = "tempo")')
    commands(f"setTempoColour={day.isoformat()},{colour}")
    return (f"Tempo {day.isoformat()}: RTE's colour again" if colour == AUTO.upper()
            else f"Tempo {day.isoformat()}: {colour} (manual)")


@bp.post("/tempo")
def post_form():
    security.check_csrf()
    try:
        flash(set_colour(request.form.get("date", ""), request.form.get("colour", "")))
    except (ValueError, NoTempo) as exc:
        flash(f"Tempo: {exc}")
    return redirect("/", 303)


@bp.errorhandler(DaemonUnavailable)
def _unavailable(exc):
    flash(f"Tempo: nothing changed, TWCManager is not responding ({exc})")
    return redirect("/", 303)
