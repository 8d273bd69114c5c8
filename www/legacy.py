"""The old PHP URLs: /TWCapi.php (LennyBo) keeps working for bookmarks and scripts."""
from __future__ import annotations

from flask import Blueprint, jsonify, redirect, request

from . import security
from .daemon_link import DaemonUnavailable, commands, get_status
from .modes import commands_for
from .status import lennybo_json

bp = Blueprint("legacy", __name__)


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
        try:
            commands(*commands_for("boost" if args.get("Boost") == "1" else "eco"))
        except DaemonUnavailable as exc:
            return jsonify(error="TWCManager is not responding", detail=str(exc)), 503
        return redirect("/", code=302)
    return jsonify(error="expected GetStatus=1, Boost=1 or CancelBoost=1"), 400

