"""PI30 (MPP-Solar / Voltronic / Axpert) frames and typed answers, pure (shared/spec/pi30.md).

Request: ASCII command + CRC (high byte first) + CR. Answer: `(` + payload + CRC + CR, the CRC
over everything before it. CRC-16/XMODEM (`binascii.crc_hqx`), with the fix-up: a CRC byte
equal to `(`, CR or LF is sent as that byte + 1, so it never looks like a frame boundary.

`AnswerDecoder.feed(bytes)` takes bytes split anywhere, skips garbage before `(` and NUL
padding (hidraw reports), and yields one `Answer` per CR: the payload when the CRC matches,
ACK or NAK (a bare `(NAK` too), or the reason it was refused. A frame whose CRC does not match
never yields a value. The parsers turn payloads into typed figures.
"""
from __future__ import annotations

import binascii
from dataclasses import dataclass

CR = 0x0D
_FIXED_UP = (0x28, 0x0D, 0x0A)   # "(", CR, LF
MAX_FRAME_BYTES = 512            # the longest answer (QPIRI of newer units) is ~110


def crc_bytes(data: bytes) -> bytes:
    """The two CRC bytes as sent, fix-up applied."""
    crc = binascii.crc_hqx(data, 0)
    return bytes(b + 1 if b in _FIXED_UP else b for b in (crc >> 8, crc & 0xFF))


def request(command: str) -> bytes:
    """The frame for one command, e.g. `request("QPIGS")`."""
    data = command.encode("ascii")
    return data + crc_bytes(data) + b"\r"


@dataclass(frozen=True)
class Answer:
    payload: str | None            # the text after "(", None when refused
    error: str | None = None       # why the frame was refused (bad CRC, too short, …)

    @property
    def ack(self) -> bool:
        return self.payload == "ACK"

    @property
    def nak(self) -> bool:
        return self.payload == "NAK"


def check_frame(frame: bytes) -> Answer:
    """One frame from `(` to just before CR."""
    if frame == b"(NAK":
        return Answer("NAK")   # a few firmwares send it bare
    if len(frame) < 3:
        return Answer(None, f"frame of {len(frame)} bytes is too short for its CRC")
    body, sent = frame[:-2], frame[-2:]
    if crc_bytes(body) != sent:
        return Answer(None, f"CRC {sent.hex()} does not match {crc_bytes(body).hex()}")
    try:
        text = body[1:].decode("ascii")
    except UnicodeDecodeError:
        return Answer(None, "payload is not ASCII")
    return Answer(text)


class AnswerDecoder:
    """Answers out of a byte stream split anywhere."""

    def __init__(self) -> None:
        self._frame = bytearray()
        self._in_frame = False
        self.garbage_bytes = 0

    def feed(self, data: bytes) -> list[Answer]:
        answers = []
        for byte in data:
            if byte == 0:
                continue   # hidraw pads its 8-byte reports with NUL
            if not self._in_frame:
                if byte == 0x28:
                    self._in_frame, self._frame = True, bytearray(b"(")
                else:
                    self.garbage_bytes += 1
                continue
            if byte == CR:
                answers.append(check_frame(bytes(self._frame)))
                self._in_frame = False
                continue
            self._frame.append(byte)
            if len(self._frame) > MAX_FRAME_BYTES:
                answers.append(Answer(None, f"no CR within {MAX_FRAME_BYTES} bytes"))
                self._in_frame = False
        return answers


# ------------------------------------------------------------------ typed answers

MODES = {"P": "power on", "S": "standby", "L": "line", "B": "battery", "F": "fault",
         "H": "power saving", "D": "shutdown", "Y": "bypass"}
OUTPUT_PRIORITIES = ("utility", "solar", "sbu")                             # POP00..02
CHARGER_PRIORITIES = ("utility", "solar", "solar-utility", "solar-only")    # PCP00..03
# QPIWS flags in order (bit 0 first); "" = unused.
WARNINGS = (
    "", "inverter fault", "bus over", "bus under", "bus soft fail", "line fail",
    "output short", "inverter voltage too low", "inverter voltage too high", "over temperature",
    "fan locked", "battery voltage too high", "battery low", "", "battery under shutdown", "",
    "overload", "eeprom fault", "inverter over current", "inverter soft fail", "self test fail",
    "output dc voltage over", "battery open", "current sensor fail", "battery short",
    "power limit", "pv voltage high", "mppt overload fault", "mppt overload", "battery too low to charge",
    "", "")
FLAG_NAMES = {"a": "buzzer", "b": "overload bypass", "j": "power saving",
              "k": "lcd reset to default", "u": "overload restart",
              "v": "over temperature restart", "x": "lcd backlight",
              "y": "primary source interrupt alarm", "z": "record fault code"}


class ParseError(ValueError):
    """A payload that does not have the shape of its command's answer."""


def _fields(payload: str, command: str, at_least: int) -> list[str]:
    fields = payload.split()
    if len(fields) < at_least:
        raise ParseError(f"{command}: {len(fields)} fields, expected at least {at_least}")
    return fields


def _number(fields: list[str], index: int, command: str) -> float:
    try:
        return float(fields[index])
    except ValueError:
        raise ParseError(f"{command}: field {index} {fields[index]!r} is not a number") from None


@dataclass(frozen=True)
class GeneralStatus:
    """QPIGS."""
    grid_v: float
    grid_hz: float
    ac_out_v: float
    ac_out_hz: float
    ac_out_va: float
    ac_out_w: float
    load_pct: float
    bus_v: float
    battery_v: float
    battery_charge_a: float
    battery_soc_pct: float
    heatsink_c: float
    pv_battery_a: float
    pv_v: float
    scc_battery_v: float
    battery_discharge_a: float
    status_bits: str
    pv_w: float | None          # field 19; older firmwares stop before it

    @property
    def battery_w(self) -> float:
        """+ = charging."""
        return self.battery_v * (self.battery_charge_a - self.battery_discharge_a)


def parse_qpigs(payload: str) -> GeneralStatus:
    f = _fields(payload, "QPIGS", 17)
    numbers = [_number(f, i, "QPIGS") for i in range(16)]
    pv_w = _number(f, 19, "QPIGS") if len(f) > 19 else None
    return GeneralStatus(*numbers, status_bits=f[16], pv_w=pv_w)


@dataclass(frozen=True)
class Ratings:
    """QPIRI: what is set, and the two priorities by name."""
    battery_rating_v: float
    battery_recharge_v: float
    battery_under_v: float
    battery_bulk_v: float
    battery_float_v: float
    battery_type: int
    max_ac_charge_a: float
    max_charge_a: float
    output_priority: str
    charger_priority: str


def parse_qpiri(payload: str) -> Ratings:
    f = _fields(payload, "QPIRI", 25)
    out, charger = f[16], f[17]
    if not (out.isdigit() and int(out) < len(OUTPUT_PRIORITIES)):
        raise ParseError(f"QPIRI: output source priority {out!r} is not 0..2")
    if not (charger.isdigit() and int(charger) < len(CHARGER_PRIORITIES)):
        raise ParseError(f"QPIRI: charger source priority {charger!r} is not 0..3")
    v = [_number(f, i, "QPIRI") for i in (7, 8, 9, 10, 11, 12, 13, 14)]
    return Ratings(v[0], v[1], v[2], v[3], v[4], int(v[5]), v[6], v[7],
                   OUTPUT_PRIORITIES[int(out)], CHARGER_PRIORITIES[int(charger)])


def parse_qmod(payload: str) -> str:
    """The mode letter (P S L B F H D Y)."""
    if len(payload) != 1 or payload not in MODES:
        raise ParseError(f"QMOD: {payload!r} is not a known mode letter")
    return payload


def parse_qpiws(payload: str) -> list[str]:
    """The names of the warnings and faults that are on."""
    if not payload or set(payload) - {"0", "1"}:
        raise ParseError(f"QPIWS: {payload[:40]!r} is not a string of 0 and 1")
    return [WARNINGS[i] if i < len(WARNINGS) and WARNINGS[i] else f"flag {i}"
            for i, bit in enumerate(payload) if bit == "1"]


def parse_qflag(payload: str) -> dict[str, bool]:
    """Settings by name -> enabled (`EakxyDbjuvz`: E enables the letters after it, D disables)."""
    state, flags = None, {}
    for letter in payload:
        if letter in "ED":
            state = letter == "E"
        elif state is not None:
            flags[FLAG_NAMES.get(letter, letter)] = state
    if state is None:
        raise ParseError(f"QFLAG: {payload!r} has no E or D")
    return flags


def parse_text(payload: str, command: str) -> str:
    """QPI (`PI30`), QID (serial), QVFW (`VERFW:00072.70` -> `00072.70`)."""
    if not payload:
        raise ParseError(f"{command}: empty answer")
    return payload.split(":", 1)[1] if command == "QVFW" and ":" in payload else payload


def output_priority_command(name: str) -> str:
    """`sbu` -> `POP02`."""
    if name not in OUTPUT_PRIORITIES:
        raise ValueError(f"output priority {name!r}: expected one of {', '.join(OUTPUT_PRIORITIES)}")
    return f"POP{OUTPUT_PRIORITIES.index(name):02d}"


def charger_priority_command(name: str) -> str:
    """`solar-only` -> `PCP03`."""
    if name not in CHARGER_PRIORITIES:
        raise ValueError(f"charger priority {name!r}: expected one of "
                         f"{', '.join(CHARGER_PRIORITIES)}")
    return f"PCP{CHARGER_PRIORITIES.index(name):02d}"
