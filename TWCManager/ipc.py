"""The SysV message queue the old PHP pages talk to (original-program.md §8).

Wire format (both directions): mtype 2 for requests, 1 for replies; body =
`=LH` (time, id, native order) + ASCII text. Replies copy time and id and are
cut at 290 characters, except in packet mode (dumpState): a first message
carrying one raw byte N, then N messages of up to 290 characters.

`handle_request` and `format_status` are pure (master state in, text out); the
`ipc_server.IpcServer` threads only move bytes between the kernel queue and the daemon loop.
"""
from __future__ import annotations

import json
import logging
import math
import re
import struct
from dataclasses import dataclass
from typing import Callable

from . import messages, policy
from .master import Master
from .settings import Settings, shown_settings

log = logging.getLogger("TWCManager.ipc")

REQUEST_TYPE = 2
REPLY_TYPE = 1
HEADER = struct.Struct("=LH")
MAX_REPLY_CHARS = 290
# Requests older than this when read are dropped (decisions.md §4.11), and so are requests dated
# more than a few seconds ahead: a forged date must not skip the rule (clients share our clock).
STALE_REQUEST_S = 60.0
FUTURE_REQUEST_S = 5.0
# A reply nobody took this long after its request was sent has no reader left (the PHP pages
# wait 5 s, our web app 2 s): the daemon removes it so it cannot fill the queue.
REPLY_UNREAD_S = 10.0
FTOK_ID = ord("T")


def ipc_key(path: str) -> int:
    """ftok(path, 'T'), as PHP's ftok($twcScriptDir, "T") computes it."""
    import sysv_ipc

    return sysv_ipc.ftok(str(path), FTOK_ID, silence_warning=True)


def remove_queue(key: int) -> bool:
    """Remove the queue with this key if there is one; True if one was removed. The daemon
    never removes its own (like the original: messages survive a restart); the demo,
    the benches and the tests remove the private ones they made."""
    import sysv_ipc

    try:
        sysv_ipc.MessageQueue(key).remove()
    except (sysv_ipc.ExistentialError, OSError):
        return False
    return True


def pack(time_field: int, ident: int, text: bytes) -> bytes:
    return HEADER.pack(time_field & 0xFFFFFFFF, ident & 0xFFFF) + text


@dataclass(frozen=True)
class Request:
    time_field: int
    ident: int
    text: str


class BadRequest(ValueError):
    """A request that gets a log line and no effect."""


def request_age_s(time_field: int, now_wall_s: float) -> float:
    """How long ago a request was dated, negative if in the future. The time field is 32 bits
    (it wraps in 2106): the difference is taken modulo 2**32, as a signed number."""
    diff = (int(now_wall_s) - time_field) & 0xFFFFFFFF
    if diff >= 1 << 31:
        diff -= 1 << 32
    return diff + (now_wall_s - int(now_wall_s))


def too_old_or_future(time_field: int, now_wall_s: float) -> str | None:
    """Why a request must be dropped unread, or None."""
    age_s = request_age_s(time_field, now_wall_s)
    if age_s > STALE_REQUEST_S:
        return f"sent {age_s:.0f} s ago (older than {STALE_REQUEST_S:.0f} s)"
    if age_s < -FUTURE_REQUEST_S:
        return (f"dated {-age_s:.0f} s in the future (more than {FUTURE_REQUEST_S:.0f} s ahead "
                "of our clock)")
    return None


def unpack(body: bytes) -> Request:
    if len(body) < HEADER.size:
        raise BadRequest(f"body of {len(body)} bytes is shorter than its 6-byte header")
    time_field, ident = HEADER.unpack_from(body)
    try:
        text = body[HEADER.size:].decode("ascii")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"text is not ASCII ({exc.reason} at byte {exc.start})") from None
    return Request(time_field, ident, text)


# ----------------------------------------------------------------- formatting

def hhmm(minutes: int) -> str:
    """`HH:MM`, `-1:00` when unset: the PHP pre-selects <option>s by this exact text."""
    if minutes < 0:
        return "-1:00"
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def charge_now_amps(settings: Settings, now_wall_s: float) -> float:
    return settings.charge_now_amps if policy.charge_now_active(settings, now_wall_s) else 0.0


def format_status(master: Master, now_wall_s: float) -> str:
    """The getStatus reply, field for field as §8.7 (backticks, then `~` per TWC)."""
    s = master.settings
    lim = master.limits
    fields = [
        f"{max(master.pool.amps, 0.0):.2f}",
        f"{lim.wiring_max_amps_all_twcs:.2f}",
        f"{lim.min_amps_per_twc:.2f}",
        f"{charge_now_amps(s, now_wall_s):.2f}",
        str(int(s.non_scheduled_amps)),
        str(int(s.scheduled_amps)),
        hhmm(s.scheduled_start_min),
        hhmm(s.scheduled_end_min),
        str(int(s.scheduled_days_bitmap)),
        hhmm(s.resume_green_min),
        "0",  # car API login needed: the Tesla owner API is out of scope (decisions §5)
        str(len(master.slaves)),
    ]
    for slave in master.slaves:
        fields.append("~".join([
            f"{slave.twcid >> 8:02X}{slave.twcid & 0xFF:02X}",
            str(float(slave.rated_amps)),
            f"{slave.actual_amps:.2f}",
            slave.offered_text,
            str(slave.state),
        ]))
    return "`".join(fields)


# ------------------------------------------------------------------- commands

_INT = r"-?\d+"
_SCHEDULE_RE = re.compile(
    r"setScheduledAmps=(-?\d+)\s+startTime=(-?\d+):(\d+)\s+endTime=(-?\d+):(\d+)\s+days=(\d+)\s*$")
_TIME_RE = re.compile(r"(-?\d+):(\d+)\s*$")
_HEX_RE = re.compile(r"[0-9a-fA-F]*$")
# sendTWCMsg may not set a limit behind the policy's back (decisions §4.8): a master
# heartbeat would offer any amps it likes.
_REFUSED_DEBUG_TYPES = {messages.MASTER_HEARTBEAT: "could offer amps past the wiring limit; "
                                                    "use setMasterHeartbeatData"}
_DEBUG_LEVELS = ((9, 5), (2, logging.DEBUG), (1, logging.INFO), (0, logging.WARNING))


@dataclass
class Reply:
    """What to send back: nothing, one text, or packets (dumpState)."""
    text: str | None = None
    packets: bool = False


@dataclass
class Context:
    """What a command may touch besides the master, supplied by the daemon."""
    now: float                                  # monotonic
    now_wall_s: float                           # unix seconds
    save_settings: Callable[[str], None]
    send: Callable[[bytes], None]               # write a frame to the bus
    extra_state: Callable[[], dict] = dict      # link, green source … for dumpState
    green_history: Callable[[], list] = list    # one sample a minute, for the chart


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


def handle_request(text: str, master: Master, ctx: Context) -> Reply:
    """Apply one request; raises BadRequest for input that must have no effect."""
    command, sep, arg = text.partition("=")
    settings = master.settings
    lim = master.limits

    if text == "getStatus":
        return Reply(format_status(master, ctx.now_wall_s))
    if text == "getLastTWCMsgResponse":
        raw = master.last_twc_response
        return Reply(raw.hex(" ").upper() if raw is not None else "None")
    if text == "dumpState":
        return Reply(dump_state(master, ctx), packets=True)
    if text.startswith("ping="):
        return Reply("pong=" + text[5:])  # new: a health check and an ID-safe echo
    if text == "chargeNow":
        settings.charge_now_amps = float(lim.wiring_max_amps_all_twcs)
        settings.charge_now_until_at_wall = ctx.now_wall_s + 24 * 3600
        return _changed(master, ctx, "chargeNow")
    if command == "chargeNow" and sep:
        # New form for the JSON API: chargeNow=<amps>,<seconds>.
        match = re.fullmatch(r"(\d+),(\d+)", arg.strip())
        if not match:
            raise BadRequest("chargeNow: expected chargeNow=<amps>,<seconds>")
        amps = _int_arg(match.group(1), "chargeNow amps", 1, 240)
        seconds = _int_arg(match.group(2), "chargeNow seconds", 1, 7 * 24 * 3600)
        settings.charge_now_amps = float(min(amps, lim.wiring_max_amps_all_twcs))
        settings.charge_now_until_at_wall = ctx.now_wall_s + seconds
        return _changed(master, ctx, "chargeNow")
    if text == "getStatusJson":
        # New: everything the web app and integrations show, as JSON in packets.
        return Reply(json.dumps(status_dict(master, ctx), separators=(",", ":")), packets=True)
    if text == "getGreenStatus":
        # New: grid/solar/house/car watts, last reading time, source state (ok/stale/failing).
        return Reply(json.dumps(ctx.extra_state().get("green", {}), separators=(",", ":")),
                     packets=True)
    if text == "getGreenHistory":
        return Reply(json.dumps(ctx.green_history(), separators=(",", ":")), packets=True)
    if text == "chargeNowCancel":
        settings.charge_now_amps = 0.0
        settings.charge_now_until_at_wall = 0.0
        return _changed(master, ctx, "chargeNowCancel")
    if command == "setNonScheduledAmps" and sep:
        amps = _int_arg(arg, command, -1, 240)
        settings.non_scheduled_amps = amps
        return _changed(master, ctx, text)
    if command == "setScheduledAmps" and sep:
        match = _SCHEDULE_RE.match(text)
        if not match:
            raise BadRequest("setScheduledAmps: expected 'setScheduledAmps=A startTime=HH:MM "
                             "endTime=HH:MM days=N' (newlines or spaces between fields)")
        amps = _int_arg(match.group(1), "setScheduledAmps", -1, 240)
        start = _time_arg(f"{match.group(2)}:{match.group(3)}", "startTime")
        end = _time_arg(f"{match.group(4)}:{match.group(5)}", "endTime")
        days = _int_arg(match.group(6), "days", 0, 127)
        (settings.scheduled_amps, settings.scheduled_start_min, settings.scheduled_end_min,
         settings.scheduled_days_bitmap) = (amps, start, end, days)
        return _changed(master, ctx, "setScheduledAmps")
    if command == "setResumeTrackGreenEnergyTime" and sep:
        settings.resume_green_min = _time_arg(arg, command)
        return _changed(master, ctx, text)
    if command == "sendTWCMsg" and sep:
        body = _hex_arg(arg, command)
        if len(body) < 2:
            raise BadRequest("sendTWCMsg: needs at least the 2 type bytes")
        length = master.debug_message_length()
        body = messages.pad_to(body[:length], length)
        type_code = int.from_bytes(body[:2], "big")
        reason = messages.BLOCKED_TYPES.get(type_code) or _REFUSED_DEBUG_TYPES.get(type_code)
        if reason:
            raise BadRequest(f"sendTWCMsg: refused {body[:2].hex().upper()}: {reason}")
        ctx.send(master.send_debug_message(body, ctx.now))
        return Reply()
    if command == "setMasterHeartbeatData" and sep:
        data = _hex_arg(arg, command)
        master.override_heartbeat_data = data[:9] or None
        return Reply()
    if command == "setDebugLevel" and sep:
        level = _int_arg(arg, command, 0, 11)
        logging.getLogger("TWCManager").setLevel(
            next(lvl for threshold, lvl in _DEBUG_LEVELS if level >= threshold))
        return Reply()
    if command == "carApiEmailPassword":
        raise BadRequest("carApiEmailPassword: the Tesla owner API is not supported "
                         "(retired by Tesla; decisions §5)")
    raise BadRequest(f"Unknown IPC request from web server: {text[:60]!r}")


def _changed(master: Master, ctx: Context, what: str) -> Reply:
    # Saved on every set command, as the original; charge-now too (decisions §4.14).
    ctx.save_settings(what)
    master.settings_changed(ctx.now)
    return Reply()


def status_dict(master: Master, ctx: Context) -> dict:
    """The state as numbers (getStatusJson): the web dashboard and the JSON API."""
    s = master.settings
    lim = master.limits
    return {
        "pool_amps": round(max(master.pool.amps, 0.0), 2),
        "pool_source": master.pool.source,
        "pool_reason": master.pool.reason,
        "wiring_max_amps_all_twcs": lim.wiring_max_amps_all_twcs,
        "wiring_max_amps_per_twc": lim.wiring_max_amps_per_twc,
        "min_amps_per_twc": lim.min_amps_per_twc,
        "charge_now_amps": charge_now_amps(s, ctx.now_wall_s),
        "charge_now_until": s.charge_now_until_at_wall if charge_now_amps(s, ctx.now_wall_s) else None,
        "non_scheduled_amps": s.non_scheduled_amps,
        "scheduled_amps": s.scheduled_amps,
        "scheduled_start": hhmm(s.scheduled_start_min),
        "scheduled_end": hhmm(s.scheduled_end_min),
        "scheduled_days_bitmap": s.scheduled_days_bitmap,
        "resume_green_at": hhmm(s.resume_green_min),
        "server_time": ctx.now_wall_s,
        "volts_per_amp": master.watts_per_amp(),
        "slaves": [{
            "twcid": slave.id_hex,
            "protocol": slave.protocol,
            "max_amps": slave.rated_amps,
            "actual_amps": round(slave.actual_amps, 2),
            "offered_amps": slave.offered_amps,
            "reported_limit_amps": round(slave.reported_limit_amps, 2),
            "state": slave.state,
            "idle": slave.idle,
            "seconds_since_heard": round(ctx.now - slave.last_heard_at, 1),
            "kwh": slave.kwh,
            "volts": list(slave.volts) if slave.volts else None,
            "config_errors": list(slave.config_errors),
        } for slave in master.slaves],
        "bus": {"other_master": (f"{master.problems.other_master_id:04X}"
                                 if master.problems.other_master_id is not None else None),
                "id_clashes": master.problems.id_clashes},
        **ctx.extra_state(),
    }


def dump_state(master: Master, ctx: Context) -> str:
    lim = master.limits
    lines = [
        f"time={ctx.now_wall_s:.0f}, masterID={master.master_id:04X}, "
        f"wiringMaxAmpsAllTWCs={lim.wiring_max_amps_all_twcs:g}, "
        f"wiringMaxAmpsPerTWC={lim.wiring_max_amps_per_twc:g}, "
        f"minAmpsPerTWC={lim.min_amps_per_twc:g}",
        f"pool={master.pool.amps:.2f} source={master.pool.source} reason={master.pool.reason}",
        # Tokens and the home's position stay in the file, never on a page (issue 15).
        f"settings: {shown_settings(master.settings)}",
    ]
    lines += [f"{key}: {value}" for key, value in ctx.extra_state().items()]
    problems = master.problems
    lines.append(f"bus: decoder={master.decoder.stats} other_master="
                 f"{problems.other_master_id} id_clashes={problems.id_clashes}")
    for slave in master.slaves:
        lines.append(f"slave {slave.id_hex}: " + ", ".join(
            f"{key}={value!r}" for key, value in vars(slave).items()))
    return "\n".join(lines)


def reply_bodies(request: Request, reply: Reply) -> list[bytes]:
    """The queue messages for a reply: one cut at 290 characters, or packets."""
    if reply.text is None:
        return []
    text = reply.text.encode("ascii", "replace")
    if not reply.packets:
        return [pack(request.time_field, request.ident, text[:MAX_REPLY_CHARS])]
    count = max(1, math.ceil(len(text) / MAX_REPLY_CHARS))
    if count > 255:  # the count travels in one byte
        text, count = text[:255 * MAX_REPLY_CHARS], 255
    chunks = [text[i:i + MAX_REPLY_CHARS] for i in range(0, count * MAX_REPLY_CHARS,
                                                          MAX_REPLY_CHARS)]
    first = pack(request.time_field, request.ident, bytes([count]))
    return [first] + [pack(request.time_field, request.ident, chunk) for chunk in chunks]


def redact(text: str) -> str:
    if text.startswith("carApiEmailPassword"):
        return text.split("\n", 1)[0] + "[HIDDEN]"
    return text
