"""The SysV message queue the old PHP pages talk to (original-program.md §8).

Wire format (both directions): mtype 2 for requests, 1 for replies; body =
`=LH` (time, id, native order) + ASCII text. Replies copy time and id and are
cut at 290 characters, except in packet mode (dumpState): a first message
carrying one raw byte N, then N messages of up to 290 characters.

Pure: the commands are `ipc.commands`, the status renderings `ipc.status`, and the
`ipc.server.IpcServer` threads only move bytes between the kernel queue and the daemon loop.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

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


@dataclass
class Reply:
    """What to send back: nothing, one text, or packets (dumpState)."""
    text: str | None = None
    packets: bool = False


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
