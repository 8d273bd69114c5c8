"""Typed messages: parse_message, to_body, heartbeat data (twc-protocol.md §2, §3, §11)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from TWCManager.twc import messages as m
from TWCManager.twc.messages import (
    BLOCKED_TYPES,
    NO_CHANGE,
    DebugReply,
    DebugRequest,
    KwhReport,
    KwhRequest,
    MasterHeartbeat,
    MasterIdle,
    MasterIdle4h,
    MasterLinkready1,
    MasterLinkready2,
    SlaveHeartbeat,
    SlaveLinkready,
    Unknown,
    heartbeat_command,
    pad_to,
    parse_message,
    to_wire,
)
from TWCManager.twc.protocol import VALID_LENGTHS, FrameDecoder


def h(spec: str) -> bytes:
    """Bytes from the spec's notation: hex pairs, with `00x8` meaning eight `00` bytes."""
    out = bytearray()
    for token in spec.replace("×", "x").split():
        if "x" in token:
            value, count = token.split("x")
            out += bytes([int(value, 16)]) * int(count)
        else:
            out.append(int(token, 16))
    return bytes(out)


def with_checksum(body: bytes) -> bytes:
    """Independent oracle for §1.2: body + (sum of every byte but the first) & 0xFF."""
    return body + bytes([sum(body[1:]) % 256])


# §11.1 vectors: (body without checksum, checksum from the spec's wire frame, wire, message).
VECTORS = [
    (
        "FC E1 77 77 77 00x8",
        0x46,
        "C0 FC E1 77 77 77 00 00 00 00 00 00 00 00 46 C0",
        MasterLinkready1(0x7777, 0x77),
    ),
    (
        "FB E2 77 77 77 00x8",
        0x47,
        "C0 FB E2 77 77 77 00 00 00 00 00 00 00 00 47 C0",
        MasterLinkready2(0x7777, 0x77),
    ),
    (
        "FD E2 77 77 77 1F 40 00x6",
        0xA6,
        "C0 FD E2 77 77 77 1F 40 00 00 00 00 00 00 A6 C0",
        SlaveLinkready(0x7777, 0x77, 80.0, 1),
    ),
    (
        "FD E2 77 77 77 1F 40 00x8",
        0xA6,
        "C0 FD E2 77 77 77 1F 40 00 00 00 00 00 00 00 00 A6 C0",
        SlaveLinkready(0x7777, 0x77, 80.0, 2),
    ),
    (
        "FD E2 03 2E 01 1F 40 00x6",
        0x73,
        "C0 FD E2 03 2E 01 1F 40 00 00 00 00 00 00 73 C0",
        SlaveLinkready(0x032E, 0x01, 80.0, 1),
    ),
    # "16-byte frame" in the spec; checksum by hand: E2+03+2E+01+0C+80 = 0x1A0 -> A0.
    (
        "FD E2 03 2E 01 0C 80 00x8",
        0xA0,
        "C0 FD E2 03 2E 01 0C 80 00x8 A0 C0",
        SlaveLinkready(0x032E, 0x01, 32.0, 2),
    ),
    (
        "FB E0 77 77 03 2E 00x9",
        0xFF,
        "C0 FB E0 77 77 03 2E 00 00 00 00 00 00 00 00 00 FF C0",
        MasterHeartbeat(0x7777, 0x032E, bytes(9)),
    ),
    (
        "FB E0 77 77 03 2E 05 00 00 00x6",
        0x04,
        "C0 FB E0 77 77 03 2E 05 00 00 00 00 00 00 00 00 04 C0",
        MasterHeartbeat(0x7777, 0x032E, h("05 00x8")),
    ),
    (
        "FB E0 77 77 03 2E 09 00 00 00x6",
        0x08,
        "C0 FB E0 77 77 03 2E 09 00 00 00 00 00 00 00 00 08 C0",
        MasterHeartbeat(0x7777, 0x032E, h("09 00x8")),
    ),
    (
        "FB E0 77 77 03 2E 05 0F A0 00x6",
        0xB3,
        "C0 FB E0 77 77 03 2E 05 0F A0 00 00 00 00 00 00 B3 C0",
        MasterHeartbeat(0x7777, 0x032E, h("05 0F A0 00x6")),
    ),
    (
        "FB E0 77 77 03 2E 05 12 C0 00x6",
        0xD6,
        "C0 FB E0 77 77 03 2E 05 12 DB DC 00 00 00 00 00 00 D6 C0",
        MasterHeartbeat(0x7777, 0x032E, h("05 12 C0 00x6")),
    ),
    (
        "FB E0 77 77 03 2E 09 06 40 00x6",
        0x4E,
        "C0 FB E0 77 77 03 2E 09 06 40 00 00 00 00 00 00 4E C0",
        MasterHeartbeat(0x7777, 0x032E, h("09 06 40 00x6")),
    ),
    (
        "FD E0 03 2E 77 77 03 02 58 00 19 00 00",
        0x75,
        "C0 FD E0 03 2E 77 77 03 02 58 00 19 00 00 75 C0",
        SlaveHeartbeat(0x032E, 0x7777, h("03 02 58 00 19 00 00")),
    ),
    (
        "FD E0 03 2E 77 77 01 06 40 06 18 00 00 00 00",
        0x64,
        "C0 FD E0 03 2E 77 77 01 06 40 06 18 00 00 00 00 64 C0",
        SlaveHeartbeat(0x032E, 0x7777, h("01 06 40 06 18 00 00 00 00")),
    ),
    ("FC 1D 00x11", 0x1D, "C0 FC 1D 00 00 00 00 00 00 00 00 00 00 00 1D C0", MasterIdle()),
    (
        "FB EB 77 77 03 2E 00x9",
        0x0A,
        "C0 FB EB 77 77 03 2E 00 00 00 00 00 00 00 00 00 0A C0",
        KwhRequest(0x7777, 0x032E),
    ),
    (
        "FD EB 77 77 00 00 00 77 00 F0 00x5",
        0x40,
        "C0 FD EB 77 77 00 00 00 77 00 F0 00 00 00 00 00 40 C0",
        KwhReport(0x7777, 119, (240, 0, 0), 16),
    ),
    (
        "FB 1B 00x11",
        0x1B,
        "C0 FB 1B 00 00 00 00 00 00 00 00 00 00 00 1B C0",
        DebugRequest(0xFB1B, bytes(11)),
    ),
    ("FB 1B 00x13", 0x1B, "C0 FB 1B 00x13 1B C0", DebugRequest(0xFB1B, bytes(13))),
    (
        "FD EB 60 61 00 A3 20 EC 00 F1 00x9",
        0x4C,
        "C0 FD EB 60 61 00 A3 20 EC 00 F1 00 00 00 00 00 00 00 00 00 4C C0",
        KwhReport(0x6061, 0x00A320EC, (0x00F1, 0, 0), 20),
    ),
]
IDS = [f"{i}-{type(v[3]).__name__}" for i, v in enumerate(VECTORS)]


@pytest.mark.parametrize("body,cs,wire,expected", VECTORS, ids=IDS)
def test_vector_parses_to_typed_message(body: str, cs: int, wire: str, expected: m.Message) -> None:
    assert parse_message(h(body) + bytes([cs])) == expected


@pytest.mark.parametrize("body,cs,wire,expected", VECTORS, ids=IDS)
def test_vector_to_body_and_to_wire(body: str, cs: int, wire: str, expected: m.Message) -> None:
    assert expected.to_body() == h(body)
    assert to_wire(expected) == h(wire)


@pytest.mark.parametrize("body,cs,wire,expected", VECTORS, ids=IDS)
def test_vector_wire_through_decoder(body: str, cs: int, wire: str, expected: m.Message) -> None:
    (raw,) = FrameDecoder().feed(h(wire))
    assert parse_message(raw) == expected


def test_vector_field_meanings() -> None:
    # §11.1 notes: what each vector means, read from the typed message.
    assert VECTORS[5][3].max_amps == 32.0 and VECTORS[5][3].protocol == 2
    assert VECTORS[9][3].command == 0x05 and VECTORS[9][3].amps == 40.0
    assert VECTORS[10][3].amps == 48.0
    assert VECTORS[11][3].command == 0x09 and VECTORS[11][3].amps == 16.0
    hb1 = VECTORS[12][3]
    assert (hb1.state, hb1.limit_amps, hb1.actual_amps, hb1.protocol) == (3, 6.0, 0.25, 1)
    hb2 = VECTORS[13][3]
    assert (hb2.state, hb2.limit_amps, hb2.actual_amps, hb2.protocol) == (1, 16.0, 15.6, 2)


def test_slave_linkready_protocol_from_length() -> None:
    # §1.5: 14 bytes -> protocol 1, 16 -> 2; 20 leaves it unknown.
    body20 = h("FD E2 03 2E 01 1F 40 00x12")
    msg = parse_message(with_checksum(body20))
    assert msg == SlaveLinkready(0x032E, 0x01, 80.0, None)
    assert msg.to_body() == body20


def test_slave_heartbeat_20_bytes_is_protocol_2() -> None:
    body = h("FD E0 03 2E 77 77 01 06 40 06 18 00x8")
    msg = parse_message(with_checksum(body))
    assert isinstance(msg, SlaveHeartbeat)
    assert len(msg.data) == 13
    assert (msg.state, msg.limit_amps, msg.actual_amps, msg.protocol) == (1, 16.0, 15.6, 2)
    assert msg.to_body() == body


# --- §11.2 heartbeat data ------------------------------------------------------------------------


def _slave_hb(data: str) -> SlaveHeartbeat:
    return SlaveHeartbeat(0x032E, 0x7777, h(data))


@pytest.mark.parametrize(
    "data,state,limit_amps,actual_amps",
    [
        ("00 00 00 00 19 00 00", 0x00, 0.0, 0.25),  # unplugged
        ("04 00 00 00 19 00 00", 0x04, 0.0, 0.25),  # negotiation: requests power
        ("04 12 C0 00 19 00 00", 0x04, 48.0, 0.25),
        ("08 00 00 00 19 00 00", 0x08, 0.0, 0.25),
        ("01 00 00 00 19 00 00", 0x01, 0.0, 0.25),  # relay-click oscillation
        ("03 02 58 00 19 00 00", 0x03, 6.0, 0.25),
        ("03 00 00 00 19 00 00", 0x03, 0.0, 0.25),  # fixed steady state
        ("01 07 20 08 00 00 00 00 00", 0x01, 18.24, 20.48),
    ],
)
def test_slave_heartbeat_data(
    data: str, state: int, limit_amps: float, actual_amps: float
) -> None:
    hb = _slave_hb(data)
    assert hb.state == state
    assert hb.limit_amps == pytest.approx(limit_amps)
    assert hb.actual_amps == pytest.approx(actual_amps)
    assert hb.protocol == (1 if len(h(data)) == 7 else 2)


@pytest.mark.parametrize(
    "raw,amps", [("0F AA", 40.10), ("1F 40", 80.00), ("1F 41", 80.01), ("FF FF", 655.35)]
)
def test_echoed_amp_values(raw: str, amps: float) -> None:
    # §11.2: values a slave accepts and echoes, both ways.
    hb = _slave_hb(f"01 {raw} {raw} 00 00")
    assert hb.limit_amps == pytest.approx(amps)
    assert hb.actual_amps == pytest.approx(amps)
    assert heartbeat_command(0x09, amps, 2)[1:3] == h(raw)
    assert heartbeat_command(0x05, amps, 1)[1:3] == h(raw)


@pytest.mark.parametrize(
    "data,command,amps,protocol",
    [
        ("05 12 C0 00 00 00 00", 0x05, 48.0, 1),  # negotiation answer
        ("08 12 C0 00 00 00 00", 0x08, 48.0, 1),
        ("05 0F A0 00 00 00 00", 0x05, 40.0, 1),  # real master p1 examples
        ("05 00 00 00 00 00 00", 0x05, 0.0, 1),  # relay-click fix: 05 0000 0000 0000
        ("09 06 40 00 00 00 00 00 00", 0x09, 16.0, 2),
        ("00 00 00 00 00 00 00", 0x00, 0.0, 1),  # idle / no change
    ],
)
def test_heartbeat_command_builds_master_data(
    data: str, command: int, amps: float, protocol: int
) -> None:
    assert heartbeat_command(command, amps, protocol) == h(data)
    hb = MasterHeartbeat(0x7777, 0x032E, h(data))
    assert (hb.command, hb.amps, hb.protocol) == (command, amps, protocol)


def test_master_heartbeat_examples() -> None:
    error = MasterHeartbeat(0x7777, 0x032E, h("02 04 00 00 00 00 00"))
    assert error.command == 0x02 and error.data[1] == 0x04  # error bitmap 04
    plugged = MasterHeartbeat(0x7777, 0x032E, h("05 07 D0 01 00 00 00"))
    assert plugged.amps == 20.0 and plugged.data[3] == 0x01  # master itself plugged in


def test_no_change_lengths_per_protocol() -> None:
    # decisions.md §4.4: protocol 1 gets 7 data bytes, protocol 2 gets 9.
    assert NO_CHANGE(1) == h("00x7")
    assert NO_CHANGE(2) == h("00x9")
    with pytest.raises(ValueError):
        NO_CHANGE(3)


def test_heartbeat_command_lengths_and_rounding() -> None:
    assert len(heartbeat_command(0x05, 6, 1)) == 7
    assert len(heartbeat_command(0x09, 6, 2)) == 9
    assert heartbeat_command(0x09, 16.004, 2)[1:3] == h("06 40")
    assert heartbeat_command(0x09, 15.996, 2)[1:3] == h("06 40")
    for bad_amps in (-0.01, 655.36, math.nan, math.inf):
        with pytest.raises(ValueError):
            heartbeat_command(0x09, bad_amps, 2)
    with pytest.raises(ValueError):
        heartbeat_command(0x09, 6, 3)
    with pytest.raises(ValueError):
        heartbeat_command(0x100, 6, 1)


def test_limit_command() -> None:
    assert m.limit_command(1) == 0x05
    assert m.limit_command(2) == 0x09


@pytest.mark.parametrize(
    "override,expected7",
    [
        ("05", "05 00 00 00 00 00 00"),
        ("05 02 58", "05 02 58 00 00 00 00"),  # 6 A
        ("05 08 34", "05 08 34 00 00 00 00"),  # 21 A
        ("05 0F A0", "05 0F A0 00 00 00 00"),  # 40 A
        ("09 32 00", "09 32 00 00 00 00 00"),  # 128 A
        ("02 01", "02 01 00 00 00 00 00"),
    ],
)
def test_debug_page_overrides_pad_to_7(override: str, expected7: str) -> None:
    assert pad_to(h(override), 7) == h(expected7)


def test_debug_page_override_amps() -> None:
    assert pad_to(h("05 02 58"), 7) == heartbeat_command(0x05, 6, 1)
    assert pad_to(h("05 08 34"), 7) == heartbeat_command(0x05, 21, 1)
    assert pad_to(h("05 0F A0"), 7) == heartbeat_command(0x05, 40, 1)
    assert pad_to(h("09 32 00"), 9) == heartbeat_command(0x09, 128, 2)


def test_pad_to_full_length_and_too_long() -> None:
    nine = h("09 06 00 00 00 00 00 00 00")
    assert pad_to(nine, 9) == nine
    with pytest.raises(ValueError):
        pad_to(nine, 7)


def test_debug_request_padding_matches_original() -> None:
    # §11.1: sendTWCMsg=FB1B padded to 13 body bytes (p1 slave) or 15 (none / p2).
    assert pad_to(h("FB 1B"), 13) == DebugRequest(0xFB1B, bytes(11)).to_body()
    assert pad_to(h("FB 1B"), 15) == DebugRequest(0xFB1B, bytes(13)).to_body()


# --- §11.2 kWh reports -----------------------------------------------------------------------------


def test_kwh_report_us() -> None:
    body = h("FD EB 77 77 00 00 00 14 00 F6 00 00 00 00 00")
    msg = parse_message(with_checksum(body))
    assert msg == KwhReport(0x7777, 20, (246, 0, 0), 16)
    assert msg.to_body() == body


def test_kwh_report_eu() -> None:
    body = h("FD EB 03 2E 00 00 00 38 00 E6 00 F1 00 E8 00")
    msg = parse_message(with_checksum(body))
    assert msg == KwhReport(0x032E, 56, (230, 241, 232), 16)
    assert msg.to_body() == body


def test_kwh_report_needs_room_for_three_volts() -> None:
    # 14 bytes end after two phases: not a kWh report we can type.
    body = h("FD EB 03 2E 00 00 00 38 00 E6 00 F1 00")
    assert isinstance(parse_message(with_checksum(body)), Unknown)


# --- other types, constants ------------------------------------------------------------------------


def test_type_code_constants() -> None:
    assert m.MASTER_LINKREADY1 == 0xFCE1
    assert m.MASTER_LINKREADY2 == 0xFBE2
    assert m.SLAVE_LINKREADY == 0xFDE2
    assert m.MASTER_HEARTBEAT == 0xFBE0
    assert m.SLAVE_HEARTBEAT == 0xFDE0
    assert m.KWH_REQUEST == 0xFBEB
    assert m.KWH_REPORT == 0xFDEB
    assert m.MASTER_IDLE == 0xFC1D
    assert m.MASTER_IDLE_4H == 0xFCD1
    assert m.DEBUG_SILENCE == 0xFCA1
    assert (m.DEBUG_SERIAL_REQUEST, m.DEBUG_SERIAL_REPLY) == (0xFB19, 0xFD19)
    assert (m.DEBUG_MODEL_REQUEST, m.DEBUG_MODEL_REPLY) == (0xFB1A, 0xFD1A)
    assert (m.DEBUG_FIRMWARE_REQUEST, m.DEBUG_FIRMWARE_REPLY) == (0xFB1B, 0xFD1B)


def test_blocked_types() -> None:
    assert dict(BLOCKED_TYPES) == {
        0xFC19: "could permanently disable the TWC",
        0xFC1A: "could permanently disable the TWC",
        0xFBE8: "could crash the TWC",
    }


def test_master_idle_4h() -> None:
    body = h("FC D1 00x11")
    assert parse_message(with_checksum(body)) == MasterIdle4h()
    assert MasterIdle4h().to_body() == body


def test_fc_a1_is_a_debug_request() -> None:
    msg = parse_message(with_checksum(h("FC A1 00x11")))
    assert msg == DebugRequest(0xFCA1, bytes(11))


def test_debug_reply_text_and_firmware() -> None:
    serial = parse_message(with_checksum(h("FD 19") + b"18C000032E" + bytes(3)))
    assert isinstance(serial, DebugReply)
    assert serial.text == "18C000032E"
    model = parse_message(with_checksum(h("FD 1A") + b"1001000-02-E" + bytes(1)))
    assert model.text == "1001000-02-E"
    firmware = parse_message(with_checksum(h("FD 1B 04 05 03 00x10")))
    assert firmware.firmware_version == (4, 5, 3)


@pytest.mark.parametrize("code", ["FB EE", "FD EE", "FC E2", "FC B1", "FB E8", "12 34"])
def test_other_types_are_unknown_and_keep_their_bytes(code: str) -> None:
    body = h(code) + bytes(range(1, 14))
    msg = parse_message(with_checksum(body))
    assert msg == Unknown(int.from_bytes(h(code), "big"), bytes(range(1, 14)))
    assert msg.to_body() == body


@pytest.mark.parametrize("length", [0, 1, 2, 3, 13, 15, 17, 21, 40])
def test_invalid_lengths_come_back_as_unknown(length: int) -> None:
    data = (h("FD E0 03 2E 77 77") + bytes(40))[:length]
    assert len(data) == length
    msg = parse_message(data)
    assert isinstance(msg, Unknown)


@pytest.mark.parametrize(
    "build",
    [
        lambda: MasterLinkready1(0x10000, 0x77),
        lambda: MasterLinkready1(-1, 0x77),
        lambda: MasterLinkready2(0x7777, 0x100),
        lambda: SlaveLinkready(0x7777, 0x77, 655.36, 1),
        lambda: SlaveLinkready(0x7777, 0x77, 80.0, 3),
        lambda: MasterHeartbeat(0x7777, 0x032E, bytes(8)),
        lambda: SlaveHeartbeat(0x7777, 0x032E, bytes(6)),
        lambda: KwhRequest(0x7777, 0x1_0000),
        lambda: KwhReport(0x7777, 1, (240, 0), 16),
        lambda: KwhReport(0x7777, 1, (240, 0, 0), 18),
        lambda: KwhReport(0x7777, 2**32, (240, 0, 0), 16),
        lambda: DebugRequest(0xFD1B, b""),
        lambda: DebugReply(0xFB1B, b""),
        lambda: Unknown(0x10000, b""),
    ],
)
def test_invalid_fields_are_refused(build) -> None:
    with pytest.raises(ValueError):
        build()


def test_messages_are_frozen_and_hashable() -> None:
    hb = MasterHeartbeat(0x7777, 0x032E, bytearray(7))
    assert isinstance(hb.data, bytes)
    assert hash(hb) == hash(MasterHeartbeat(0x7777, 0x032E, bytes(7)))
    with pytest.raises(AttributeError):
        hb.sender_id = 1  # type: ignore[misc]


# --- properties (hypothesis) -------------------------------------------------------------------

_ID = st.integers(0, 0xFFFF)
_BYTE = st.integers(0, 0xFF)
_AMPS = st.integers(0, 0xFFFF).map(lambda hundredths: hundredths / 100)
_HB_DATA = st.sampled_from([7, 9, 13]).flatmap(lambda n: st.binary(min_size=n, max_size=n))


def _raw(cls, codes: st.SearchStrategy[int]) -> st.SearchStrategy[m.Message]:
    """A type code and a payload that makes a 14, 16 or 20-byte message."""
    return st.builds(
        cls,
        codes,
        st.sampled_from([11, 13, 17]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    )


_KNOWN = (
    set(m.DEBUG_REQUEST_TYPES)
    | set(m.DEBUG_REPLY_TYPES)
    | {
        m.MASTER_LINKREADY1,
        m.MASTER_LINKREADY2,
        m.SLAVE_LINKREADY,
        m.MASTER_HEARTBEAT,
        m.SLAVE_HEARTBEAT,
        m.KWH_REQUEST,
        m.KWH_REPORT,
        m.MASTER_IDLE,
        m.MASTER_IDLE_4H,
    }
)

typed_messages = st.one_of(
    st.builds(MasterLinkready1, _ID, _BYTE),
    st.builds(MasterLinkready2, _ID, _BYTE),
    st.builds(SlaveLinkready, _ID, _BYTE, _AMPS, st.sampled_from([1, 2, None])),
    st.builds(MasterHeartbeat, _ID, _ID, _HB_DATA),
    st.builds(SlaveHeartbeat, _ID, _ID, _HB_DATA),
    st.builds(KwhRequest, _ID, _ID),
    st.builds(
        KwhReport,
        _ID,
        st.integers(0, 0xFFFFFFFF),
        st.tuples(_ID, _ID, _ID),
        st.sampled_from([16, 20]),
    ),
    st.just(MasterIdle()),
    st.just(MasterIdle4h()),
    _raw(DebugRequest, st.sampled_from(sorted(m.DEBUG_REQUEST_TYPES))),
    _raw(DebugReply, st.sampled_from(sorted(m.DEBUG_REPLY_TYPES))),
    _raw(Unknown, st.integers(0, 0xFFFF).filter(lambda code: code not in _KNOWN)),
)


@settings(max_examples=300)
@given(typed_messages)
def test_every_message_round_trips(msg: m.Message) -> None:
    body = msg.to_body()
    assert len(body) + 1 in VALID_LENGTHS
    assert int.from_bytes(body[:2], "big") == msg.type_code
    again = parse_message(with_checksum(body))
    assert again == msg
    assert type(again) is type(msg)
    assert again.to_body() == body


@settings(max_examples=200)
@given(typed_messages)
def test_to_wire_decodes_to_the_same_message(msg: m.Message) -> None:
    (raw,) = FrameDecoder().feed(to_wire(msg))
    assert parse_message(raw) == msg


@settings(max_examples=300)
@given(st.binary(max_size=40))
def test_parse_never_raises(data: bytes) -> None:
    assert isinstance(parse_message(data), m.Message)


@settings(max_examples=300)
@given(
    st.sampled_from(sorted(_KNOWN) + [0xFBEE, 0xFCE2]),
    st.sampled_from([n - 3 for n in VALID_LENGTHS]).flatmap(
        lambda n: st.binary(min_size=n, max_size=n)
    ),
)
def test_parse_of_valid_length_normalises_stably(type_code: int, payload: bytes) -> None:
    # Any message of a valid length parses; re-encoding it (padding zeroed) and parsing again
    # gives the same message.
    msg = parse_message(with_checksum(type_code.to_bytes(2, "big") + payload))
    body = msg.to_body()
    assert len(body) + 1 in VALID_LENGTHS
    assert parse_message(with_checksum(body)) == msg
