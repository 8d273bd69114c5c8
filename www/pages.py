"""The original control page (`/index.php`, original-program.md §9.1) with its `?debugTWC=1`
debug pages (the dashboard, `/`, is www/dashboard.py).

The original changed state from GET links; here every change is a POST form with a
CSRF token, and the old links show a pre-filled form to confirm. Every field of the
control form is checked before anything is sent: a bad field sends nothing.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

from flask import (Blueprint, current_app, flash, redirect, render_template, request,
                   url_for)

from TWCManager.twc import messages

from . import security
from .daemon_link import DaemonUnavailable, commands, get_status, query
from .status import Status

bp = Blueprint("pages", __name__)

# The original's amp choices by model (§9.1), decided by the LAST TWC's max amps.
EU_AMPS = (6, 8, 10, 13, 17, 21, 25, 32)
US_AMPS = (6, 8, 12, 16, 20, 24, 28, 32, 36, 40, 48, 56, 64, 72, 80)
EU_MODEL_BELOW_AMPS = 40.0
DEFAULT_MODEL_AMPS = 80.0      # no TWC on the bus: the original's default
DAY_NAMES = ("Su", "Mo", "Tu", "We", "Th", "Fr", "Sa")   # bit 0 = Sunday
NEVER = "-1:00"

# sendTWCMsg: the daemon pads or cuts to 15 bytes (13 on protocol 1).
MAX_TWC_MSG_BYTES = 15
MAX_HEARTBEAT_BYTES = 9
REFUSED_TWC_MSG_TYPES = messages.REFUSED_DEBUG_TYPES
SEND_QUICK_LINKS = (("FB1B", "Get firmware version"), ("FB19", "Get (S)TSN (serial number)"),
                    ("FB1A", "Get model"), ("FCE1777766", "Master Linkready1"),
                    ("FBE2777766", "Master Linkready2"))
HEARTBEAT_QUICK_LINKS = (("", "Stop overriding"), ("05", "Charge 0A"), ("050258", "Charge 6A"),
                         ("050834", "Charge 21A"), ("050FA0", "Charge 40A"),
                         ("093200", "Charge 128A (buggy 0A)"), ("0201", "Error 1"))

# How long the send-message page waits before asking for the TWC's reply, as the
# original (most replies come within 2 s; FCA1 silences the TWC for ~5 s). App config
# keys, so tests need not wait.
MSG_WAIT_KEY = "TWC_MSG_REPLY_WAIT_S"
FCA1_WAIT_KEY = "TWC_MSG_FCA1_EXTRA_WAIT_S"
SLEEP_KEY = "TWC_SLEEP"
DEFAULT_MSG_WAIT_S = 3.0
DEFAULT_FCA1_EXTRA_WAIT_S = 5.0

_HHMM = re.compile(r"(\d\d):(\d\d)")
_WHITESPACE = re.compile(r"[ \r\n\t]")    # what the original stripped from hex input


@bp.errorhandler(DaemonUnavailable)
def _unavailable(exc):
    return _no_cache(render_template("index_php.html", unavailable=str(exc))), 503


def _no_cache(response):
    response = current_app.make_response(response)
    response.headers["Cache-Control"] = "no-store"
    return response


# ------------------------------------------------------------ the control page

@dataclass
class Option:
    value: str
    label: str


@dataclass
class ControlForm:
    """The choices of the control form and what is selected, from one getStatus."""
    scheduled: list[Option]
    non_scheduled: list[Option]
    start: list[Option]
    end: list[Option]
    resume: list[Option]
    selected: dict[str, str]
    days: set[int]
    charge_now_active: bool
    charge_now_label: str
    power_available: str = "None"
    twc_lines: list[tuple[str, str]] = field(default_factory=list)

    def options(self, name: str) -> list[Option]:
        return {"scheduledAmpsMax": self.scheduled, "nonScheduledAmpsMax": self.non_scheduled,
                "scheduledAmpStartTime": self.start, "scheduledAmpsEndTime": self.end,
                "resumeTrackGreenEnergyTime": self.resume}[name]


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DaemonUnavailable(f"unexpected reply from TWCManager: {what} {text!r} "
                                f"is not a number")
    return value


def _loose_number(text: str) -> float:
    # PHP compared such strings as numbers; something odd counts as 0, as there.
    try:
        return float(text)
    except ValueError:
        return 0.0


def _hour_label(hhmm: str, use_24h: bool) -> str:
    if use_24h:
        return hhmm
    hour, minute = (int(part) for part in hhmm.split(":"))
    suffix = "am" if hour < 12 else "pm"
    return f"{(hour % 12) or 12}:{minute:02d}{suffix}"


def _is_time_of_day(text: str) -> bool:
    match = _HHMM.fullmatch(text)
    return bool(match) and int(match.group(1)) < 24 and int(match.group(2)) < 60


def _with_current(options: list[Option], current: str, label: str | None,
                  sort_key) -> list[Option]:
    """Offer the daemon's current value when it is valid but not a standard choice.
    The original then pre-selected the first option and the next Save silently sent
    it (§8.7); here Save keeps what is set."""
    if label is None or any(o.value == current for o in options):
        return options
    return sorted(options + [Option(current, label)], key=sort_key)


def build_form(status: Status) -> ControlForm:
    pool = _loose_number(status.pool)
    wiring = _number(status.wiring_max_amps_all_twcs, "wiringMaxAmpsAllTWCs")
    minimum = _number(status.min_amps_per_twc, "minAmpsPerTWC")

    power_available = f"{status.pool} A" if pool > 0 else "None"
    twc_lines = []
    model_amps = DEFAULT_MODEL_AMPS
    for twc in status.twcs:
        model_amps = _loose_number(twc.max_amps)
        actual, offered = _loose_number(twc.actual_amps), _loose_number(twc.offered_amps)
        if actual < 1.0:
            if offered < 5.0:
                if 0 < pool < minimum:
                    text = f"Power available less than {status.min_amps_per_twc}A (minAmpsPerTWC)."
                else:
                    text = "No power available."
            else:
                text = ("Finished charging, unplugged, or waking up. "
                        f"({twc.offered_amps}A available)")
        else:
            text = f"Charging at {twc.actual_amps}A."
            if offered - actual > 1.0:
                text += f" ({twc.offered_amps}A available)"
        twc_lines.append((twc.twcid, text))

    use_24h = model_amps < EU_MODEL_BELOW_AMPS
    standard = [a for a in (EU_AMPS if use_24h else US_AMPS) if minimum <= a <= wiring]
    amp_options = [Option(str(a), f"{a}A") for a in standard]

    def amps_label(current: str) -> str | None:
        if re.fullmatch(r"\d+", current) and minimum <= int(current) <= wiring:
            return f"{int(current)}A"
        return None

    def amps_key(option: Option) -> int:
        return int(option.value)

    scheduled = [Option("-1", "Disabled")] + _with_current(
        amp_options, status.scheduled_amps, amps_label(status.scheduled_amps), amps_key)
    non_scheduled = [Option("-1", "Track green energy"), Option("0", "Do not charge")] + \
        _with_current(amp_options, status.non_scheduled_amps,
                      amps_label(status.non_scheduled_amps), amps_key)

    hours = [Option(f"{h:02d}:00", _hour_label(f"{h:02d}:00", use_24h)) for h in range(24)]

    def hours_with(current: str) -> list[Option]:
        label = _hour_label(current, use_24h) if _is_time_of_day(current) else None
        return _with_current(hours, current, label, lambda o: o.value)

    try:
        bitmap = int(status.scheduled_days)
    except ValueError:
        bitmap = 0
    charge_now = _loose_number(status.charge_now_amps) > 0
    return ControlForm(
        scheduled=scheduled, non_scheduled=non_scheduled,
        start=hours_with(status.scheduled_start), end=hours_with(status.scheduled_end),
        resume=[Option(NEVER, "Never")] + hours_with(status.resume_green_at),
        selected={"scheduledAmpsMax": status.scheduled_amps,
                  "nonScheduledAmpsMax": status.non_scheduled_amps,
                  "scheduledAmpStartTime": status.scheduled_start,
                  "scheduledAmpsEndTime": status.scheduled_end,
                  "resumeTrackGreenEnergyTime": status.resume_green_at},
        days={i for i in range(7) if bitmap >> i & 1},
        charge_now_active=charge_now,
        charge_now_label=f"1-day charge, {wiring:.0f}A",
        power_available=power_available, twc_lines=twc_lines)


FIELD_TITLES = {"scheduledAmpsMax": "Scheduled power", "scheduledAmpStartTime": "from",
                "scheduledAmpsEndTime": "to", "nonScheduledAmpsMax": "Non-scheduled power",
                "resumeTrackGreenEnergyTime": "Resume 'Track green energy' at"}
_DAY_FIELD = re.compile(r"scheduledAmpsDay\[(.*)\]")


def validate_control(form, control: ControlForm) -> tuple[list[str], list[str]]:
    """(commands, errors) for a control-form submit, the original's commands in its order.
    Like the original, a field that is absent or empty sends nothing of its own."""
    errors: list[str] = []
    values: dict[str, str] = {}
    for name, title in FIELD_TITLES.items():
        value = form.get(name, "")
        if value == "":
            continue
        allowed = control.options(name)
        if not any(o.value == value for o in allowed):
            shown = ", ".join(o.label for o in allowed[:12]) + (" …" if len(allowed) > 12 else "")
            errors.append(f"{title}: {value!r} is not one of the choices ({shown}).")
        else:
            values[name] = value

    bitmap = 0
    for key in form:
        match = _DAY_FIELD.fullmatch(key)
        if match:
            day = int(match.group(1)) if re.fullmatch(r"\d", match.group(1)) else 7
            if day > 6:
                errors.append(f"Day checkbox {key!r} does not exist (0 = Sunday … 6 = Saturday).")
            elif form.get(key) not in ("1", "on"):
                errors.append(f"Day checkbox {DAY_NAMES[day]}: value {form.get(key)!r} is not 1.")
            else:
                bitmap |= 1 << day
    if not 0 <= bitmap <= 127:  # cannot happen with days 0..6; the daemon's limit
        errors.append(f"Days bitmap {bitmap} is outside 0..127.")

    if form.get("scheduledAmpsMax", "") != "":
        for name in ("scheduledAmpStartTime", "scheduledAmpsEndTime"):
            if form.get(name, "") == "":
                errors.append(f"{FIELD_TITLES[name]}: a time is needed with Scheduled power.")

    button = form.get("submit", "")
    last: str | None = None
    if button.startswith("1-day charge"):    # the label carries the amps: a prefix, as there
        last = "chargeNow"
    elif button == "Cancel 1-day charge":
        last = "chargeNowCancel"
    elif button == "":
        errors.append("No button was pressed: use Save, 1-day charge or Cancel 1-day charge.")
    elif button != "Save":
        errors.append(f"Unknown button {button!r}: use Save, 1-day charge or Cancel 1-day charge.")
    if errors:
        return [], errors

    sent = []
    if "nonScheduledAmpsMax" in values:
        sent.append(f"setNonScheduledAmps={values['nonScheduledAmpsMax']}")
    if "scheduledAmpsMax" in values:
        sent.append(f"setScheduledAmps={values['scheduledAmpsMax']}"
                    f"\nstartTime={values['scheduledAmpStartTime']}"
                    f"\nendTime={values['scheduledAmpsEndTime']}"
                    f"\ndays={bitmap}")
    if "resumeTrackGreenEnergyTime" in values:
        sent.append(f"setResumeTrackGreenEnergyTime={values['resumeTrackGreenEnergyTime']}")
    if last:
        sent.append(last)
    return sent, []


def _keep_entries(control: ControlForm, form) -> None:
    """After a refused submit, show what the person chose where it is still a choice."""
    for name in FIELD_TITLES:
        value = form.get(name, "")
        if any(o.value == value for o in control.options(name)):
            control.selected[name] = value
    if "submit" in form:
        control.days = {i for i in range(7) if form.get(f"scheduledAmpsDay[{i}]") in ("1", "on")}


def _control_page(errors: list[str] | None = None, form=None):
    control = build_form(get_status())
    if form is not None:
        _keep_entries(control, form)
    return _no_cache(render_template("index_php.html", c=control, errors=errors or [],
                                     day_names=DAY_NAMES,
                                     old_link=_old_state_link()))


def _old_state_link() -> bool:
    # An old bookmark such as index.php?submit=Save&nonScheduledAmpsMax=8 changed
    # settings with a GET; now it only shows the form.
    return request.method == "GET" and bool(request.args.get("submit")) and any(
        name in request.args for name in FIELD_TITLES)


# ----------------------------------------------------------------- the route

@bp.route("/index.php", methods=["GET", "POST"])
def index_php():
    if request.method == "POST":
        security.check_csrf()
        form = request.form
        if "setDebugLevel" in form:
            return _post_debug_level(form["setDebugLevel"])
        if "sendTWCMsg" in form:
            return _post_send_msg(form["sendTWCMsg"])
        if "setMasterHeartbeatData" in form:
            return _post_heartbeat(form["setMasterHeartbeatData"])
        return _post_control(form)

    args = request.args
    if "sendTWCMsg" in args:
        return _debug_page("send", hex_text=args.get("sendTWCMsg", ""))
    if "getLastTWCMsgResponse" in args:   # read-only: ask again without sending
        return _debug_page("send", hex_text="", response=_twc_response())
    if "setMasterHeartbeatData" in args:
        return _debug_page("heartbeat", hex_text=args.get("setMasterHeartbeatData", ""))
    if args.get("dumpState"):
        return _debug_page("dump", dump=query("dumpState"))
    if args.get("debugTWC"):
        return _debug_page("menu", level=args.get("setDebugLevel", ""))
    return _control_page()


def _post_control(form):
    control = build_form(get_status())   # the choices in force now, for validation
    sent, errors = validate_control(form, control)
    if errors:
        _keep_entries(control, form)
        return _no_cache(render_template("index_php.html", c=control, errors=errors,
                                         day_names=DAY_NAMES, old_link=False)), 400
    commands(*sent)
    flash("Sent to TWCManager." if sent else "Nothing to send.")
    return redirect(url_for("pages.index_php"), code=303)


# ----------------------------------------------------------------- debug pages

def _debug_page(page: str, status_code: int = 200, **context):
    context.setdefault("hex_text", "")
    return _no_cache(render_template(
        "debug.html", page=page, send_links=SEND_QUICK_LINKS,
        heartbeat_links=HEARTBEAT_QUICK_LINKS, **context)), status_code


def _post_debug_level(text: str):
    value = text.strip()
    if not re.fullmatch(r"\d{1,2}", value) or not 0 <= int(value) <= 11:
        return _debug_page("menu", 400, level=text,
                           error=f"Debug level {text!r} must be a whole number from 0 to 11.")
    commands(f"setDebugLevel={int(value)}")
    return _debug_page("menu", level=str(int(value)),
                       done=f"Debug level set to {int(value)}.")


def check_hex(text: str, max_bytes: int, min_bytes: int) -> str | None:
    """An error message for a hex message, or None."""
    if not re.fullmatch(r"[0-9A-Fa-f]*", text):
        return f"{text!r} is not hex: use only the digits 0-9 and A-F."
    if len(text) % 2:
        return f"{text!r} has an odd number of hex digits (two per byte)."
    if len(text) // 2 > max_bytes:
        return f"{len(text) // 2} bytes is too long: at most {max_bytes} bytes."
    if len(text) // 2 < min_bytes:
        return f"Enter at least {min_bytes} bytes, e.g. FB1B." if min_bytes > 1 else \
            "Enter at least one byte."
    return None


def check_twc_msg(text: str) -> str | None:
    error = check_hex(text, MAX_TWC_MSG_BYTES, 2)
    if error:
        return error
    reason = REFUSED_TWC_MSG_TYPES.get(int(text[:4], 16))
    if reason:
        return f"Message type {text[:4].upper()} is refused: {reason}."
    return None


def _post_send_msg(raw: str):
    hex_text = _WHITESPACE.sub("", raw).upper()
    error = check_twc_msg(hex_text)
    if error:
        return _debug_page("send", 400, hex_text=raw, error=error)
    commands(f"sendTWCMsg={hex_text}")
    cfg = current_app.config
    wait_s = cfg.get(MSG_WAIT_KEY, DEFAULT_MSG_WAIT_S)
    if hex_text.startswith("FCA1"):
        wait_s += cfg.get(FCA1_WAIT_KEY, DEFAULT_FCA1_EXTRA_WAIT_S)
    if wait_s > 0:
        cfg.get(SLEEP_KEY, time.sleep)(wait_s)
    return _debug_page("send", hex_text=hex_text, sent=hex_text, response=_twc_response())


def _twc_response() -> dict:
    text = query("getLastTWCMsgResponse")
    return {"text": text, "decoded": decode_twc_response(text)}


def decode_twc_response(text: str) -> tuple[str, str] | None:
    """(what, value) for the debug replies the original decoded, else None. The reply
    is space-separated hex with the checksum as its last byte."""
    try:
        data = bytes.fromhex(text)
    except ValueError:
        return None
    if len(data) < 3:
        return None
    kind, payload = int.from_bytes(data[:2], "big"), data[2:-1]
    if kind not in messages.DEBUG_REPLY_TYPES or (
            kind == messages.DEBUG_FIRMWARE_REPLY and len(payload) < 3):
        return None
    reply = messages.DebugReply(kind, payload)
    return reply.what, reply.value


def _post_heartbeat(raw: str):
    hex_text = _WHITESPACE.sub("", raw).upper()
    error = check_hex(hex_text, MAX_HEARTBEAT_BYTES, 0)
    if error:
        return _debug_page("heartbeat", 400, hex_text=raw, error=error)
    commands(f"setMasterHeartbeatData={hex_text}")
    done = (f"Master heartbeat data overridden with {hex_text}." if hex_text
            else "Stopped overriding master heartbeat data.")
    return _debug_page("heartbeat", hex_text=hex_text, done=done)
