"""The dashboard (`/`): a shell that the scripts fill, every few seconds, from /api/getState,
/api/getGreenStatus, /api/getHistory, /api/getInverterStatus, /api/getTariffStatus and
/api/getChargeGoal. What is rendered here is what the page needs before its first poll: the
mode selector, the inverter forms, and what Boost and Eco set for the night (issue 14)."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

from .daemon_link import DaemonUnavailable
from .inverter import choices
from .modes import LABELS, night
from .pages import _no_cache

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def dashboard():
    forms = [("output-priority", "Output priority", choices("output-priority")),
             ("charger-priority", "Charger priority", choices("charger-priority"))]
    try:
        schedule = night()
    except DaemonUnavailable:
        schedule = None       # the page still opens and says the daemon is not responding
    cfg = current_app.extensions["twc"]["cfg"]
    return _no_cache(render_template(
        "dashboard.html", inverter_forms=forms, modes=list(LABELS.items()),
        night_text=night_text(schedule), wiring_amps=int(cfg.twc.wiring_max_amps_all_twcs)))


def night_text(schedule: dict | None) -> str:
    """What Boost and Eco set for the night, said on the page (issue 14 point 1)."""
    if schedule is None:
        return ""
    if not schedule["on"]:
        return "Boost and Eco set no night charge ([eco] night_charge = false)."
    return (f"Boost and Eco also set a night charge: {schedule['amps']} A from "
            f"{schedule['start']} to {schedule['end']} every day ({schedule['source']}; "
            "[eco] in the configuration).")
