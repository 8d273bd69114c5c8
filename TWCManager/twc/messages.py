"""Typed TWC Gen2 messages: one frozen dataclass per message type (twc-protocol.md §2, §3).

`parse_message` turns a message as `FrameDecoder` yields it (unescaped, checksum included) into one
of these; `Message.to_body()` gives the bytes back without the checksum, and `to_wire` the frame.

IDs are ints 0..0xFFFF; amps are floats in amps (wire: hundredths, big-endian, §2).
Bytes the spec calls padding are ignored when parsing and written as zeros, so
`parse_message(to_body() + checksum)` gives the same message back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Mapping

from .protocol import VALID_LENGTHS, encode_frame

# --- Type codes (§2.1) ---------------------------------------------------------------------------
MASTER_LINKREADY1 = 0xFCE1
MASTER_LINKREADY2 = 0xFBE2
SLAVE_LINKREADY = 0xFDE2
MASTER_HEARTBEAT = 0xFBE0
SLAVE_HEARTBEAT = 0xFDE0
KWH_REQUEST = 0xFBEB
KWH_REPORT = 0xFDEB
MASTER_IDLE = 0xFC1D  # every 2 h from an idle real master
MASTER_IDLE_4H = 0xFCD1  # every 4 h from an idle real master, all zeros
DEBUG_SERIAL_REQUEST = 0xFB19
DEBUG_SERIAL_REPLY = 0xFD19
DEBUG_MODEL_REQUEST = 0xFB1A
DEBUG_MODEL_REPLY = 0xFD1A
DEBUG_FIRMWARE_REQUEST = 0xFB1B
DEBUG_FIRMWARE_REPLY = 0xFD1B
DEBUG_SILENCE = 0xFCA1  # silences the TWC for ~5 s (web debug page)
BLOCKED_FC19 = 0xFC19
BLOCKED_FC1A = 0xFC1A
BLOCKED_FBE8 = 0xFBE8

# Learned after the original (§2.2); parsed as Unknown, named so logs and tests can refer to them.
VIN_FIRST_REQUEST = 0xFBEE
VIN_FIRST_REPLY = 0xFDEE
VIN_MIDDLE_REQUEST = 0xFBEF
VIN_MIDDLE_REPLY = 0xFDEF
VIN_LAST_REQUEST = 0xFBF1
VIN_LAST_REPLY = 0xFDF1
SERIAL_REQUEST = 0xFBED
SERIAL_REPLY = 0xFDED
FIRMWARE_REQUEST = 0xFBEC
FIRMWARE_REPLY = 0xFDEC
START_CHARGING = 0xFCB1
START_CHARGING_REPLY = 0xFDB1
STOP_CHARGING = 0xFCB2
STOP_CHARGING_REPLY = 0xFDB2
PLUG_STATE_REQUEST = 0xFBB4
PLUG_STATE_REPLY = 0xFDB4
DATA_FBA4 = 0xFBA4  # listed among the 20-byte messages of firmware 4.5.3 (§1.3)

DEBUG_REQUEST_TYPES = frozenset(
    {DEBUG_SERIAL_REQUEST, DEBUG_MODEL_REQUEST, DEBUG_FIRMWARE_REQUEST, DEBUG_SILENCE}
)
DEBUG_REPLY_TYPES = frozenset({DEBUG_SERIAL_REPLY, DEBUG_MODEL_REPLY, DEBUG_FIRMWARE_REPLY})
DEBUG_REPLY_NAMES: Mapping[int, str] = MappingProxyType({
    DEBUG_SERIAL_REPLY: "(S)TSN", DEBUG_MODEL_REPLY: "Model", DEBUG_FIRMWARE_REPLY: "Firmware version"})

# sendTWCMsg refuses these (§2.1).
BLOCKED_TYPES: Mapping[int, str] = MappingProxyType(
    {
        BLOCKED_FC19: "could permanently disable the TWC",
        BLOCKED_FC1A: "could permanently disable the TWC",
        BLOCKED_FBE8: "could crash the TWC",
    }
)
# What the debug page and sendTWCMsg refuse: the blocked types, and a master heartbeat, which
# would set a limit behind the policy's back (decisions §4.8).
REFUSED_DEBUG_TYPES: Mapping[int, str] = MappingProxyType({
    **BLOCKED_TYPES,
    MASTER_HEARTBEAT: "a master heartbeat could offer amps past the wiring limit; "
            "use setMasterHeartbeatData (Override master heartbeat data)",
})

# --- Heartbeat data (§3) -------------------------------------------------------------------------
# Master command byte (§3.1).
CMD_NO_CHANGE = 0x00
CMD_ERROR = 0x02
CMD_LIMIT_P1 = 0x05
CMD_PLUS_2A = 0x06
CMD_MINUS_2A = 0x07
CMD_ACK_STOPPED = 0x08
CMD_LIMIT_P2 = 0x09

# Slave state byte (§3.2).
STATE_READY = 0x00
STATE_CHARGING = 0x01
STATE_ERROR = 0x02
STATE_DO_NOT_CHARGE = 0x03
STATE_READY_TO_CHARGE = 0x04
STATE_BUSY = 0x05
STATE_PLUS_2A = 0x06
STATE_MINUS_2A = 0x07
STATE_STARTING = 0x08
STATE_LIMIT_P2 = 0x09
STATE_ADJUSTMENT_DONE = 0x0A
# What the pages and the API call them.
STATE_NAMES: Mapping[int, str] = MappingProxyType({
    STATE_READY: "ready", STATE_CHARGING: "charging", STATE_ERROR: "error",
    STATE_DO_NOT_CHARGE: "plugged, do not charge", STATE_READY_TO_CHARGE: "plugged, ready",
    STATE_BUSY: "busy", STATE_STARTING: "starting", STATE_ADJUSTMENT_DONE: "amp adjustment done",
})

# Heartbeat data bytes per protocol: 7 (p1, 14-byte message) or 9 (p2, 16-byte) (§2.1, §4.4 of
# decisions.md). A 20-byte FD E0 carries 13; it is accepted and treated as protocol 2.
HEARTBEAT_DATA_LENGTH = MappingProxyType({1: 7, 2: 9})
_HEARTBEAT_DATA_PROTOCOL = MappingProxyType({7: 1, 9: 2, 13: 2})


_LINKREADY_PROTOCOL_BY_LENGTH = MappingProxyType({14: 1, 16: 2, 20: None})
_LINKREADY_LENGTH_BY_PROTOCOL = MappingProxyType({1: 14, 2: 16, None: 20})
_KWH_REPORT_LENGTHS = (16, 20)
_MASTER_MESSAGE_LENGTH = 14  # linkreadies, idle: the original always sends the p1 length (§2.1)


def pad_to(data: bytes, n: int) -> bytes:
    """`data` followed by zeros up to `n` bytes; ValueError if it is already longer."""
    data = bytes(data)
    if len(data) > n:
        raise ValueError(f"{len(data)} bytes do not fit in {n}")
    return data + bytes(n - len(data))


def limit_command(protocol: int) -> int:
    """The "limit to amps" command: 05 for protocol 1, 09 for protocol 2 (§3.1)."""
    if protocol == 1:
        return CMD_LIMIT_P1
    if protocol == 2:
        return CMD_LIMIT_P2
    raise ValueError(f"unknown protocol {protocol!r}")


def no_change_data(protocol: int) -> bytes:
    """All-zero heartbeat data, "no change / ack" (§3.1): 7 bytes (p1) or 9 (p2)."""
    if protocol not in HEARTBEAT_DATA_LENGTH:
        raise ValueError(f"unknown protocol {protocol!r}")
    return bytes(HEARTBEAT_DATA_LENGTH[protocol])


NO_CHANGE = no_change_data  # NO_CHANGE(protocol)


def limit_data(amps: float, protocol: int) -> bytes:
    """Master heartbeat data that sets the unit's limit: 05 (p1) or 09 (p2) with the amps."""
    return heartbeat_command(limit_command(protocol), amps, protocol)


def heartbeat_command(command: int, amps: float, protocol: int) -> bytes:
    """Master heartbeat data `[command, amps hi, amps lo, 0, ...]`: 7 bytes (p1) or 9 (p2).

    Amps are rounded to hundredths (§3.1; decisions.md §4.4 for the per-protocol length).
    """
    if protocol not in HEARTBEAT_DATA_LENGTH:
        raise ValueError(f"unknown protocol {protocol!r}")
    _check_byte("command", command)
    hundredths = _hundredths("amps", amps)
    return pad_to(bytes([command]) + hundredths.to_bytes(2, "big"), HEARTBEAT_DATA_LENGTH[protocol])


# --- Field helpers ---------------------------------------------------------------------------------


def _check_int(name: str, value: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValueError(f"{name} must be an int in 0..{maximum:#x}, got {value!r}")


def _check_id(name: str, value: int) -> None:
    _check_int(name, value, 0xFFFF)


def _check_byte(name: str, value: int) -> None:
    _check_int(name, value, 0xFF)


def _hundredths(name: str, amps: float) -> int:
    """Amps -> wire hundredths (rounded), checked to fit 2 bytes."""
    if isinstance(amps, bool) or not isinstance(amps, (int, float)) or not math.isfinite(amps):
        raise ValueError(f"{name} must be a finite number, got {amps!r}")
    value = round(amps * 100)
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name} {amps!r} does not fit in 0..655.35 A")
    return value


def _amps(raw: bytes) -> float:
    return int.from_bytes(raw, "big") / 100


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def _as_bytes(obj: object, name: str) -> None:
    """Frozen dataclasses: normalise a bytes-like field to bytes (hashable, comparable)."""
    value = getattr(obj, name)
    if not isinstance(value, bytes):
        object.__setattr__(obj, name, bytes(value))


# --- Messages --------------------------------------------------------------------------------------


class Message:
    """Base of every message. Subclasses have `type_code` (int) and `to_body()`."""

    type_code: int

    def to_body(self) -> bytes:
        """The message without checksum; `encode_frame(to_body())` is the wire frame."""
        raise NotImplementedError

    @property
    def type_bytes(self) -> bytes:
        return _u16(self.type_code)


def to_wire(msg: Message) -> bytes:
    """The frame to write to the bus for `msg`."""
    return encode_frame(msg.to_body())


@dataclass(frozen=True)
class MasterLinkready1(Message):
    """FC E1 `MMMM g 00×8`, 14 bytes (§2.1)."""

    type_code: ClassVar[int] = MASTER_LINKREADY1
    sender_id: int
    sign: int

    def __post_init__(self) -> None:
        _check_id("sender_id", self.sender_id)
        _check_byte("sign", self.sign)

    def to_body(self) -> bytes:
        body = self.type_bytes + _u16(self.sender_id) + bytes([self.sign])
        return pad_to(body, _MASTER_MESSAGE_LENGTH - 1)


@dataclass(frozen=True)
class MasterLinkready2(Message):
    """FB E2 `MMMM g 00×8`, 14 bytes even to protocol-2 slaves, as the original (§2.1)."""

    type_code: ClassVar[int] = MASTER_LINKREADY2
    sender_id: int
    sign: int

    def __post_init__(self) -> None:
        _check_id("sender_id", self.sender_id)
        _check_byte("sign", self.sign)

    def to_body(self) -> bytes:
        body = self.type_bytes + _u16(self.sender_id) + bytes([self.sign])
        return pad_to(body, _MASTER_MESSAGE_LENGTH - 1)


@dataclass(frozen=True)
class SlaveLinkready(Message):
    """FD E2 `SSSS g AAAA` + zeros: 14 bytes = protocol 1, 16 = protocol 2 (§1.5, §2.1).

    A 20-byte linkready gives protocol None: the original left the version unknown and retried
    detection on the next linkready (§1.5). `to_body()` then writes the 20-byte form.
    """

    type_code: ClassVar[int] = SLAVE_LINKREADY
    sender_id: int
    sign: int
    max_amps: float
    protocol: int | None

    def __post_init__(self) -> None:
        _check_id("sender_id", self.sender_id)
        _check_byte("sign", self.sign)
        _hundredths("max_amps", self.max_amps)
        if self.protocol not in _LINKREADY_LENGTH_BY_PROTOCOL:
            raise ValueError(f"protocol must be 1, 2 or None, got {self.protocol!r}")

    def to_body(self) -> bytes:
        body = (
            self.type_bytes
            + _u16(self.sender_id)
            + bytes([self.sign])
            + _u16(_hundredths("max_amps", self.max_amps))
        )
        return pad_to(body, _LINKREADY_LENGTH_BY_PROTOCOL[self.protocol] - 1)


def _check_heartbeat(msg: MasterHeartbeat | SlaveHeartbeat) -> None:
    _check_id("sender_id", msg.sender_id)
    _check_id("receiver_id", msg.receiver_id)
    _as_bytes(msg, "data")
    if len(msg.data) not in _HEARTBEAT_DATA_PROTOCOL:
        raise ValueError(f"heartbeat data must be 7, 9 or 13 bytes, got {len(msg.data)}")


@dataclass(frozen=True)
class MasterHeartbeat(Message):
    """FB E0 `MMMM SSSS` + data: 7 bytes (p1) or 9 (p2) (§2.1, §3.1)."""

    type_code: ClassVar[int] = MASTER_HEARTBEAT
    sender_id: int
    receiver_id: int
    data: bytes

    def __post_init__(self) -> None:
        _check_heartbeat(self)

    def to_body(self) -> bytes:
        return self.type_bytes + _u16(self.sender_id) + _u16(self.receiver_id) + self.data

    @property
    def command(self) -> int:
        return self.data[0]

    @property
    def amps(self) -> float:
        """Data bytes 1-2: the limit for commands 05/08/09 (§3.1)."""
        return _amps(self.data[1:3])

    @property
    def protocol(self) -> int:
        return _HEARTBEAT_DATA_PROTOCOL[len(self.data)]


@dataclass(frozen=True)
class SlaveHeartbeat(Message):
    """FD E0 `SSSS MMMM` + data: 7 bytes (p1) or 9 (p2); 20-byte messages (13) count as p2 (§3.2)."""

    type_code: ClassVar[int] = SLAVE_HEARTBEAT
    sender_id: int
    receiver_id: int
    data: bytes

    def __post_init__(self) -> None:
        _check_heartbeat(self)

    def to_body(self) -> bytes:
        return self.type_bytes + _u16(self.sender_id) + _u16(self.receiver_id) + self.data

    @property
    def state(self) -> int:
        return self.data[0]

    @property
    def limit_amps(self) -> float:
        """Data bytes 1-2: the limit the slave is set to (§3.2)."""
        return _amps(self.data[1:3])

    @property
    def actual_amps(self) -> float:
        """Data bytes 3-4: the current the car draws (§3.2)."""
        return _amps(self.data[3:5])

    @property
    def protocol(self) -> int:
        return _HEARTBEAT_DATA_PROTOCOL[len(self.data)]


@dataclass(frozen=True)
class KwhRequest(Message):
    """FB EB `MMMM SSSS 00×9`, 16 bytes (§2.1)."""

    type_code: ClassVar[int] = KWH_REQUEST
    sender_id: int
    receiver_id: int

    def __post_init__(self) -> None:
        _check_id("sender_id", self.sender_id)
        _check_id("receiver_id", self.receiver_id)

    def to_body(self) -> bytes:
        return pad_to(self.type_bytes + _u16(self.sender_id) + _u16(self.receiver_id), 15)


@dataclass(frozen=True)
class KwhReport(Message):
    """FD EB `SSSS` + kWh (4, BE) + volts A, B, C (2 each, BE) + padding; 16 or 20 bytes (§2.1).

    `length` is the message length (checksum included) so re-encoding gives the same size.
    """

    type_code: ClassVar[int] = KWH_REPORT
    sender_id: int
    kwh: int
    volts: tuple[int, int, int]
    length: int = 16

    def __post_init__(self) -> None:
        _check_id("sender_id", self.sender_id)
        _check_int("kwh", self.kwh, 0xFFFFFFFF)
        if not isinstance(self.volts, tuple):
            object.__setattr__(self, "volts", tuple(self.volts))
        if len(self.volts) != 3:
            raise ValueError(f"volts must have 3 phases, got {self.volts!r}")
        for phase_volts in self.volts:
            _check_id("volts", phase_volts)
        if self.length not in _KWH_REPORT_LENGTHS:
            raise ValueError(f"length must be 16 or 20, got {self.length!r}")

    def to_body(self) -> bytes:
        body = self.type_bytes + _u16(self.sender_id) + self.kwh.to_bytes(4, "big")
        body += b"".join(_u16(v) for v in self.volts)
        return pad_to(body, self.length - 1)


@dataclass(frozen=True)
class MasterIdle(Message):
    """FC 1D `00×11`: 2-hour idle message of a real master (§2.1)."""

    type_code: ClassVar[int] = MASTER_IDLE

    def to_body(self) -> bytes:
        return pad_to(self.type_bytes, _MASTER_MESSAGE_LENGTH - 1)


@dataclass(frozen=True)
class MasterIdle4h(Message):
    """FC D1, all zeros: 4-hour idle message of a real master (§2.1). Not handled by the original."""

    type_code: ClassVar[int] = MASTER_IDLE_4H

    def to_body(self) -> bytes:
        return pad_to(self.type_bytes, _MASTER_MESSAGE_LENGTH - 1)


@dataclass(frozen=True)
class _Raw(Message):
    """A type code and the bytes after it (checksum excluded), kept verbatim."""

    type_code: int
    payload: bytes

    def __post_init__(self) -> None:
        _check_id("type_code", self.type_code)
        _as_bytes(self, "payload")

    def to_body(self) -> bytes:
        return _u16(self.type_code) + self.payload


@dataclass(frozen=True)
class DebugRequest(_Raw):
    """FB 19 serial, FB 1A model, FB 1B firmware, FC A1 silence (web debug page, §2.1)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.type_code not in DEBUG_REQUEST_TYPES:
            raise ValueError(f"{self.type_code:04X} is not a debug request")


@dataclass(frozen=True)
class DebugReply(_Raw):
    """FD 19 serial (ASCII), FD 1A model (ASCII), FD 1B firmware (3 bytes) (§2.1)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.type_code not in DEBUG_REPLY_TYPES:
            raise ValueError(f"{self.type_code:04X} is not a debug reply")

    @property
    def text(self) -> str:
        """The payload as ASCII without NULs (serial and model replies carry text, no ID)."""
        return self.payload.decode("ascii", errors="replace").replace("\x00", "")

    @property
    def firmware_version(self) -> tuple[int, ...]:
        """(major, minor, patch) from the first 3 payload bytes, as the PHP page printed (§2.1)."""
        return tuple(self.payload[:3])

    @property
    def what(self) -> str:
        return DEBUG_REPLY_NAMES[self.type_code]

    @property
    def value(self) -> str:
        """What a person reads: the firmware as `4.5.3`, else the printable ASCII of the payload
        (the original kept bytes 1..0xFE; control and 8-bit bytes say nothing)."""
        if self.type_code == DEBUG_FIRMWARE_REPLY:
            return ".".join(str(b) for b in self.firmware_version)
        return "".join(chr(b) for b in self.payload if 0x20 <= b < 0x7F)


@dataclass(frozen=True)
class Unknown(_Raw):
    """Any other message; still carries its bytes."""


def _parse_linkready1(msg: bytes, payload: bytes) -> Message:
    return MasterLinkready1(int.from_bytes(payload[0:2], "big"), payload[2])


def _parse_linkready2(msg: bytes, payload: bytes) -> Message:
    return MasterLinkready2(int.from_bytes(payload[0:2], "big"), payload[2])


def _parse_slave_linkready(msg: bytes, payload: bytes) -> Message:
    return SlaveLinkready(
        sender_id=int.from_bytes(payload[0:2], "big"),
        sign=payload[2],
        max_amps=_amps(payload[3:5]),
        protocol=_LINKREADY_PROTOCOL_BY_LENGTH[len(msg)],
    )


def _parse_master_heartbeat(msg: bytes, payload: bytes) -> Message:
    return MasterHeartbeat(
        int.from_bytes(payload[0:2], "big"), int.from_bytes(payload[2:4], "big"), payload[4:]
    )


def _parse_slave_heartbeat(msg: bytes, payload: bytes) -> Message:
    return SlaveHeartbeat(
        int.from_bytes(payload[0:2], "big"), int.from_bytes(payload[2:4], "big"), payload[4:]
    )


def _parse_kwh_request(msg: bytes, payload: bytes) -> Message:
    return KwhRequest(int.from_bytes(payload[0:2], "big"), int.from_bytes(payload[2:4], "big"))


def _parse_kwh_report(msg: bytes, payload: bytes) -> Message:
    if len(msg) not in _KWH_REPORT_LENGTHS:
        raise ValueError("a kWh report needs 16 or 20 bytes")  # 14 bytes cannot hold 3 volts
    volts = tuple(int.from_bytes(payload[i : i + 2], "big") for i in (6, 8, 10))
    return KwhReport(
        sender_id=int.from_bytes(payload[0:2], "big"),
        kwh=int.from_bytes(payload[2:6], "big"),
        volts=volts,  # type: ignore[arg-type]
        length=len(msg),
    )


_PARSERS = {
    MASTER_LINKREADY1: _parse_linkready1,
    MASTER_LINKREADY2: _parse_linkready2,
    SLAVE_LINKREADY: _parse_slave_linkready,
    MASTER_HEARTBEAT: _parse_master_heartbeat,
    SLAVE_HEARTBEAT: _parse_slave_heartbeat,
    KWH_REQUEST: _parse_kwh_request,
    KWH_REPORT: _parse_kwh_report,
    MASTER_IDLE: lambda msg, payload: MasterIdle(),
    MASTER_IDLE_4H: lambda msg, payload: MasterIdle4h(),
}
for _code in DEBUG_REQUEST_TYPES:
    _PARSERS[_code] = lambda msg, payload, _code=_code: DebugRequest(_code, payload)
for _code in DEBUG_REPLY_TYPES:
    _PARSERS[_code] = lambda msg, payload, _code=_code: DebugReply(_code, payload)
del _code


def parse_message(msg: bytes) -> Message:
    """Typed message for `msg` (unescaped, checksum included, as FrameDecoder yields it).

    The checksum is not checked here (the decoder did). Never raises: a message of a length
    other than 14, 16 or 20, or one that does not fit its type, comes back as Unknown.
    """
    msg = bytes(msg)
    if len(msg) < 3:
        # Too short even for type + checksum; only reachable by calling this directly.
        return Unknown(int.from_bytes(msg[:2].ljust(2, b"\x00"), "big"), b"")
    type_code = int.from_bytes(msg[0:2], "big")
    payload = msg[2:-1]
    parser = _PARSERS.get(type_code)
    if parser is not None and len(msg) in VALID_LENGTHS:
        try:
            return parser(msg, payload)
        except ValueError:
            pass
    return Unknown(type_code, payload)
