"""Every IPC request in one table (original-program.md §8.6, plus our additions): its name,
whether it takes `=arg`, whether it answers and in packets, and its handler.

`handle_request(text, home, ctx)` applies one request and raises `BadRequest` for input that
must have no effect (decisions §4.3). `reply_mode(text)` tells a client (ctl, the web pages)
whether to wait for a reply and in which mode, from the same table.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Callable

from ..core.goal import clear_goal
from ..settings_file import GOAL_KWH_MAX
from ..twc import messages
from .status import Context, Home, dump_state, get_status_text, snapshot
from .wire import BadRequest, Reply

_INT = r"-?\d+"
_SCHEDULE_RE = re.compile(
    r"setScheduledAmps=(-?\d+)\s+startTime=(-?\d+):(\d+)\s+endTime=(-?\d+):(\d+)\s+days=(\d+)\s*$")
_TIME_RE = re.compile(r"(-?\d+):(\d+)\s*$")
_HEX_RE = re.compile(r"[0-9a-fA-F]*$")
_DEBUG_LEVELS = ((9, 5), (2, logging.DEBUG), (1, logging.INFO), (0, logging.WARNING))

NO_ARG, ARG, EITHER = "none", "arg", "either"


@dataclass(frozen=True)
class Command:
    handler: Callable[[str, Home, Context], Reply]   # (argument text, home, context)
    arg: str = NO_ARG          # NO_ARG: exact text; ARG: "name=…"; EITHER: both forms
    query: bool = False        # answers (else a one-way command)
    packets: bool = False      # answers in packet mode


def _int_arg(text: str, name: str, low: int, high: int) -> int:
    value = text.strip()
    if not re.fullmatch(_INT, value):
        raise BadRequest(f"{name}: {value!r} is not a whole number")
    number = int(value)
    if not low <= number <= high:
        raise BadRequest(f"{name}: {number} is outside {low}..{high}")
    return number


def _time_arg(text: str, name: str) -> int:
    match = _TIME_RE.fullmatch(text.strip())
    if not match:
        raise BadRequest(f"{name}: {text.strip()!r} is not HH:MM")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours == -1:
        return -1  # "-1:00" = unset / never
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise BadRequest(f"{name}: {text.strip()!r} is not a time of day")
    return hours * 60 + minutes


def _hex_arg(text: str, name: str) -> bytes:
    value = re.sub(r"\s+", "", text)
    if not _HEX_RE.fullmatch(value):
        raise BadRequest(f"{name}: {value!r} is not hex")
    if len(value) % 2:
        raise BadRequest(f"{name}: {value!r} has an odd number of hex digits")
    return bytes.fromhex(value)


def _changed(home: Home, ctx: Context, what: str) -> Reply:
    # Saved on every set command, as the original; charge-now too (decisions §4.14).
    ctx.save_settings(what)
    home.master.settings_changed(ctx.now)
    return Reply()


# ------------------------------------------------------------------ handlers

def _get_status(arg: str, home: Home, ctx: Context) -> Reply:
    return Reply(get_status_text(snapshot(home, ctx)))


def _get_status_json(arg: str, home: Home, ctx: Context) -> Reply:
    return Reply(json.dumps(snapshot(home, ctx), separators=(",", ":")), packets=True)


def _get_green_status(arg: str, home: Home, ctx: Context) -> Reply:
    # grid/solar/house/car watts, last reading time, source state (ok/stale/failing).
    return Reply(json.dumps(ctx.extra_state().get("green", {}), separators=(",", ":")),
                 packets=True)


def _get_inverter_status(arg: str, home: Home, ctx: Context) -> Reply:
    # The PI30's last good figures (none once stale), its state, and the asked changes.
    status = ctx.inverter.status(ctx.now) if ctx.inverter is not None else None
    return Reply(json.dumps(status, separators=(",", ":")), packets=True)


def _get_green_history(arg: str, home: Home, ctx: Context) -> Reply:
    return Reply(json.dumps(ctx.green_history(), separators=(",", ":")), packets=True)


def _get_history(arg: str, home: Home, ctx: Context) -> Reply:
    """`getHistory=HOURS`: one point a minute for the last HOURS (1..720) and the daily
    totals of the days they cover, from the history store."""
    hours = _int_arg(arg, "getHistory", 1, 720)
    since = ctx.now_wall_s - hours * 3600
    history = ctx.history
    if history is None:
        return Reply(json.dumps({"minutes": [], "days": {}, "sessions": []}), packets=True)
    since_day = datetime.fromtimestamp(since).date().isoformat()
    return Reply(json.dumps({"minutes": history.minutes(since),
                             "days": history.day_totals(since_day),
                             "sessions": history.sessions(since)},
                            separators=(",", ":")), packets=True)


def _last_response(arg: str, home: Home, ctx: Context) -> Reply:
    raw = home.master.last_twc_response
    return Reply(raw.hex(" ").upper() if raw is not None else "None")


def _dump_state(arg: str, home: Home, ctx: Context) -> Reply:
    return Reply(dump_state(home, ctx), packets=True)


def _ping(arg: str, home: Home, ctx: Context) -> Reply:
    return Reply("pong=" + arg)  # a health check and an ID-safe echo


def _charge_now(arg: str | None, home: Home, ctx: Context) -> Reply:
    settings, lim = home.settings, home.master.limits
    if arg is None:
        settings.charge_now_amps = float(lim.wiring_max_amps_all_twcs)
        settings.charge_now_until_at_wall = ctx.now_wall_s + 24 * 3600
        return _changed(home, ctx, "chargeNow")
    # New form for the JSON API: chargeNow=<amps>,<seconds>.
    match = re.fullmatch(r"(\d+),(\d+)", arg.strip())
    if not match:
        raise BadRequest("chargeNow: expected chargeNow=<amps>,<seconds>")
    amps = _int_arg(match.group(1), "chargeNow amps", 1, 240)
    seconds = _int_arg(match.group(2), "chargeNow seconds", 1, 7 * 24 * 3600)
    settings.charge_now_amps = float(min(amps, lim.wiring_max_amps_all_twcs))
    settings.charge_now_until_at_wall = ctx.now_wall_s + seconds
    return _changed(home, ctx, "chargeNow")


def _charge_now_cancel(arg: str, home: Home, ctx: Context) -> Reply:
    home.settings.charge_now_amps = 0.0
    home.settings.charge_now_until_at_wall = 0.0
    return _changed(home, ctx, "chargeNowCancel")


def _set_charge_goal(arg: str, home: Home, ctx: Context) -> Reply:
    """`setChargeGoal=KWH,HH:MM`: KWH more by the next HH:MM (local time)."""
    kwh_text, _, time_text = arg.strip().partition(",")
    try:
        kwh = float(kwh_text)
    except ValueError:
        raise BadRequest(f"setChargeGoal: {kwh_text!r} is not a number of kWh") from None
    if not 0 < kwh <= GOAL_KWH_MAX:
        raise BadRequest(f"setChargeGoal: {kwh:g} kWh is outside 0 < kWh <= {GOAL_KWH_MAX}")
    minutes = _time_arg(time_text, "setChargeGoal time")
    if minutes < 0:
        raise BadRequest("setChargeGoal: expected a time of day HH:MM")
    now = datetime.fromtimestamp(ctx.now_wall_s).astimezone()
    deadline = now.replace(hour=minutes // 60, minute=minutes % 60, second=0, microsecond=0)
    if deadline <= now:
        deadline += timedelta(days=1)
    s = home.settings
    s.charge_goal_kwh, s.charge_goal_done_kwh = kwh, 0.0
    s.charge_goal_by_at_wall = deadline.timestamp()
    return _changed(home, ctx, f"setChargeGoal={kwh:g},{deadline:%H:%M}")


def _charge_goal_cancel(arg: str, home: Home, ctx: Context) -> Reply:
    clear_goal(home.settings)
    return _changed(home, ctx, "chargeGoalCancel")


def _set_green_mode(arg: str, home: Home, ctx: Context) -> Reply:
    """`setGreenMode=solar|cheapest|default` (the page's Eco choice; default = the config's)."""
    mode = arg.strip().lower()
    if mode not in ("solar", "cheapest", "default"):
        raise BadRequest(f"setGreenMode: {mode[:20]!r}: expected solar, cheapest or default")
    home.settings.green_mode = "" if mode == "default" else mode
    return _changed(home, ctx, f"setGreenMode={mode}")


def _set_non_scheduled(arg: str, home: Home, ctx: Context) -> Reply:
    home.settings.non_scheduled_amps = _int_arg(arg, "setNonScheduledAmps", -1, 240)
    return _changed(home, ctx, f"setNonScheduledAmps={arg}")


def _set_scheduled(arg: str, home: Home, ctx: Context) -> Reply:
    match = _SCHEDULE_RE.match("setScheduledAmps=" + arg)
    if not match:
        raise BadRequest("setScheduledAmps: expected 'setScheduledAmps=A startTime=HH:MM "
                         "endTime=HH:MM days=N' (newlines or spaces between fields)")
    amps = _int_arg(match.group(1), "setScheduledAmps", -1, 240)
    start = _time_arg(f"{match.group(2)}:{match.group(3)}", "startTime")
    end = _time_arg(f"{match.group(4)}:{match.group(5)}", "endTime")
    days = _int_arg(match.group(6), "days", 0, 127)
    s = home.settings
    (s.scheduled_amps, s.scheduled_start_min, s.scheduled_end_min,
     s.scheduled_days_bitmap) = (amps, start, end, days)
    return _changed(home, ctx, "setScheduledAmps")


def _set_resume(arg: str, home: Home, ctx: Context) -> Reply:
    home.settings.resume_green_min = _time_arg(arg, "setResumeTrackGreenEnergyTime")
    return _changed(home, ctx, f"setResumeTrackGreenEnergyTime={arg}")


def _send_twc_msg(arg: str, home: Home, ctx: Context) -> Reply:
    master = home.master
    body = _hex_arg(arg, "sendTWCMsg")
    if len(body) < 2:
        raise BadRequest("sendTWCMsg: needs at least the 2 type bytes")
    length = master.debug_message_length()
    body = messages.pad_to(body[:length], length)
    reason = messages.REFUSED_DEBUG_TYPES.get(int.from_bytes(body[:2], "big"))
    if reason:
        raise BadRequest(f"sendTWCMsg: refused {body[:2].hex().upper()}: {reason}")
    ctx.send(master.send_debug_message(body, ctx.now))
    return Reply()


def _set_heartbeat_data(arg: str, home: Home, ctx: Context) -> Reply:
    home.master.override_heartbeat_data = _hex_arg(arg, "setMasterHeartbeatData")[:9] or None
    return Reply()


def _set_debug_level(arg: str, home: Home, ctx: Context) -> Reply:
    level = _int_arg(arg, "setDebugLevel", 0, 11)
    logging.getLogger("TWCManager").setLevel(
        next(lvl for threshold, lvl in _DEBUG_LEVELS if level >= threshold))
    return Reply()


def _inverter_priority(what: str) -> Callable[[str, Home, Context], Reply]:
    def handler(arg: str, home: Home, ctx: Context) -> Reply:
        if ctx.inverter is None:
            raise BadRequest("no PI30 inverter configured ([pi30] port)")
        try:
            ctx.inverter.request(what, arg.strip(), "IPC request")
        except ValueError as exc:
            raise BadRequest(f"inverter {exc}") from None
        return Reply()
    return handler


def _get_tariff_status(arg: str, home: Home, ctx: Context) -> Reply:
    # The Tempo days, period and price, and the plan made from them (one fetch for the panel).
    status = None
    if ctx.tempo is not None:
        if ctx.plan is not None:
            ctx.plan.step(ctx.now)     # a colour just set is in the plan shown (cheap if not)
        status = {**ctx.tempo.status(), "plan": ctx.plan.status() if ctx.plan else None}
    return Reply(json.dumps(status, separators=(",", ":")), packets=True)


def _set_tempo_colour(arg: str, home: Home, ctx: Context) -> Reply:
    """`setTempoColour=YYYY-MM-DD,RED` (BLUE, WHITE, RED; `auto` clears the override)."""
    if ctx.tempo is None:
        raise BadRequest('setTempoColour: no Tempo tariff configured ([tariff] kind = "tempo")')
    day_text, _, colour = arg.strip().partition(",")
    try:
        day = date.fromisoformat(day_text.strip())
    except ValueError:
        raise BadRequest(f"setTempoColour: {day_text.strip()!r} is not a date YYYY-MM-DD") \
            from None
    colour = colour.strip().upper()
    try:
        ctx.tempo.calendar.override(day, None if colour == "AUTO" else colour,
                                    ctx.tempo.clock.now())
    except ValueError as exc:
        raise BadRequest(f"setTempoColour: {exc}") from None
    return Reply()


def _car_api(arg: str, home: Home, ctx: Context) -> Reply:
    raise BadRequest("carApiEmailPassword: the Tesla owner API is not supported "
                     "(retired by Tesla; decisions §5)")


COMMANDS: dict[str, Command] = {
    "getStatus": Command(_get_status, query=True),
    "getLastTWCMsgResponse": Command(_last_response, query=True),
    "dumpState": Command(_dump_state, query=True, packets=True),
    "getStatusJson": Command(_get_status_json, query=True, packets=True),
    "getGreenStatus": Command(_get_green_status, query=True, packets=True),
    "getGreenHistory": Command(_get_green_history, query=True, packets=True),
    "getHistory": Command(_get_history, arg=ARG, query=True, packets=True),
    "getInverterStatus": Command(_get_inverter_status, query=True, packets=True),
    "getTariffStatus": Command(_get_tariff_status, query=True, packets=True),
    "ping": Command(_ping, arg=ARG, query=True),
    "chargeNow": Command(_charge_now, arg=EITHER),
    "chargeNowCancel": Command(_charge_now_cancel),
    "setNonScheduledAmps": Command(_set_non_scheduled, arg=ARG),
    "setScheduledAmps": Command(_set_scheduled, arg=ARG),
    "setResumeTrackGreenEnergyTime": Command(_set_resume, arg=ARG),
    "sendTWCMsg": Command(_send_twc_msg, arg=ARG),
    "setMasterHeartbeatData": Command(_set_heartbeat_data, arg=ARG),
    "setDebugLevel": Command(_set_debug_level, arg=ARG),
    "carApiEmailPassword": Command(_car_api, arg=EITHER),
    # New (issue 11): applied by the PI30 poller between two readings, written only if it
    # differs, read back; the outcome is in getStatusJson's "inverter".
    "setInverterOutputPriority": Command(_inverter_priority("output-priority"), arg=ARG),
    "setInverterChargerPriority": Command(_inverter_priority("charger-priority"), arg=ARG),
    # New (issue 12): "N kWh by HH:MM" (sun first, then the cheapest grid slots).
    "setChargeGoal": Command(_set_charge_goal, arg=ARG),
    "chargeGoalCancel": Command(_charge_goal_cancel),
    "setGreenMode": Command(_set_green_mode, arg=ARG),
    # New (issue 12): the user's colour for a Tempo day, kept apart from the sources'.
    "setTempoColour": Command(_set_tempo_colour, arg=ARG),
}


def lookup(text: str) -> tuple[Command, str | None] | None:
    """The table entry for a request and its argument (None: the exact form)."""
    name, sep, arg = text.partition("=")
    command = COMMANDS.get(name)
    if command is None:
        return None
    if sep and command.arg in (ARG, EITHER):
        return command, arg
    if not sep and command.arg in (NO_ARG, EITHER) and name == text:
        return command, None
    return None


def reply_mode(text: str) -> bool | None:
    """None for a one-way command (or unknown text), else whether the reply is packets."""
    found = lookup(text)
    if found is None or not found[0].query:
        return None
    return found[0].packets


def handle_request(text: str, home: Home, ctx: Context) -> Reply:
    """Apply one request; raises BadRequest for input that must have no effect."""
    found = lookup(text)
    if found is None:
        raise BadRequest(f"Unknown IPC request from web server: {text[:60]!r}")
    command, arg = found
    return command.handler(arg, home, ctx)
