"""The old PHP URLs: /TWCapi.php (LennyBo) keeps working for bookmarks and scripts."""
from __future__ import annotations

from flask import Blueprint, jsonify, redirect, request

from . import security
from .daemon_link import DaemonUnavailable, commands, get_status
from .status import lennybo_json

bp = Blueprint("legacy", __name__)

# LennyBo's Boost/Eco sequence, with the schedule command separated by newlines as
# the daemon always expected (his page sent spaces; decisions §4.12 now accepts both). His
# night schedule is 21:00-07:00; with a tariff it is the tariff's off-peak window (issue 12).
NIGHT_WINDOW = ("21:00", "07:00")


def mode_commands(window: tuple[str, str] = NIGHT_WINDOW) -> tuple[str, ...]:
    return ("setNonScheduledAmps=-1",
            f"setScheduledAmps=16\nstartTime={window[0]}\nendTime={window[1]}\ndays=127",
            "setResumeTrackGreenEnergyTime=-1:00")


MODE_COMMANDS = mode_commands()


def night_window() -> tuple[str, str]:
    from .tariff import tariff_status

    tariff = tariff_status()
    if tariff and tariff.get("offpeak_start") and tariff.get("offpeak_end"):
        return tariff["offpeak_start"], tariff["offpeak_end"]
    return NIGHT_WINDOW


@bp.get("/TWCapi.php")
def twcapi():
    args = request.args
    if args.get("GetStatus") == "1":
        try:
            status = get_status()
        except DaemonUnavailable as exc:
            return jsonify(error="TWCManager is not responding", detail=str(exc)), 503
        response = jsonify(lennybo_json(status))  # key order kept: sort_keys is off
        response.headers["Cache-Control"] = "no-store"
        return response
    if args.get("Boost") == "1" or args.get("CancelBoost") == "1":
        security.refuse_cross_site()
        last = "chargeNow" if args.get("Boost") == "1" else "chargeNowCancel"
        try:
            commands(*mode_commands(night_window()), last)
        except DaemonUnavailable as exc:
            return jsonify(error="TWCManager is not responding", detail=str(exc)), 503
        return redirect("/", code=302)
    return jsonify(error="expected GetStatus=1, Boost=1 or CancelBoost=1"), 400

