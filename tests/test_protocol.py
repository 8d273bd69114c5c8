"""Framing, checksum, escaping and the streaming FrameDecoder (twc-protocol.md §1, §11.1)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from TWCManager.twc.protocol import (
    MAX_CANDIDATE_BYTES,
    VALID_LENGTHS,
    FrameDecoder,
    checksum,
    encode_frame,
    escape,
    unescape,
)


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


def spec_checksum(body: bytes) -> int:
    """Independent oracle for §1.2: every body byte except the first, summed, low byte."""
    total = 0
    for byte in body[1:]:
        total += byte
    return total % 256


def accounted(dec: FrameDecoder) -> bool:
    """Every byte fed is in exactly one stats bucket or still pending."""
    s = dec.stats
    return (
        s.delimiter_bytes + s.frame_bytes + s.garbage_bytes + s.dropped_bytes + dec.pending_bytes
        == s.bytes_in
    )


# §11.1: (body without checksum, checksum, wire frame as on the wire, note)
VECTORS = [
    ("FC E1 77 77 77 00x8", 0x46, "C0 FC E1 77 77 77 00 00 00 00 00 00 00 00 46 C0", "linkready1"),
    ("FB E2 77 77 77 00x8", 0x47, "C0 FB E2 77 77 77 00 00 00 00 00 00 00 00 47 C0", "linkready2"),
    (
        "FD E2 77 77 77 1F 40 00x6",
        0xA6,
        "C0 FD E2 77 77 77 1F 40 00 00 00 00 00 00 A6 C0",
        "slave linkready p1",
    ),
    (
        "FD E2 77 77 77 1F 40 00x8",
        0xA6,
        "C0 FD E2 77 77 77 1F 40 00 00 00 00 00 00 00 00 A6 C0",
        "slave linkready p2",
    ),
    (
        "FD E2 03 2E 01 1F 40 00x6",
        0x73,
        "C0 FD E2 03 2E 01 1F 40 00 00 00 00 00 00 73 C0",
        "slave 032E p1",
    ),
    # The spec gives only "16-byte frame"; checksum by hand per §1.2:
    # E2+03+2E+01+0C+80 = 0x1A0 -> A0.
    ("FD E2 03 2E 01 0C 80 00x8", 0xA0, "C0 FD E2 03 2E 01 0C 80 00x8 A0 C0", "slave 032E p2 EU"),
    (
        "FB E0 77 77 03 2E 00x9",
        0xFF,
        "C0 FB E0 77 77 03 2E 00 00 00 00 00 00 00 00 00 FF C0",
        "first heartbeat",
    ),
    (
        "FB E0 77 77 03 2E 05 00 00 00x6",
        0x04,
        "C0 FB E0 77 77 03 2E 05 00 00 00 00 00 00 00 00 04 C0",
        "05 0 A",
    ),
    (
        "FB E0 77 77 03 2E 09 00 00 00x6",
        0x08,
        "C0 FB E0 77 77 03 2E 09 00 00 00 00 00 00 00 00 08 C0",
        "09 0 A",
    ),
    (
        "FB E0 77 77 03 2E 05 0F A0 00x6",
        0xB3,
        "C0 FB E0 77 77 03 2E 05 0F A0 00 00 00 00 00 00 B3 C0",
        "40 A",
    ),
    (
        "FB E0 77 77 03 2E 05 12 C0 00x6",
        0xD6,
        "C0 FB E0 77 77 03 2E 05 12 DB DC 00 00 00 00 00 00 D6 C0",
        "48 A escaped",
    ),
    (
        "FB E0 77 77 03 2E 09 06 40 00x6",
        0x4E,
        "C0 FB E0 77 77 03 2E 09 06 40 00 00 00 00 00 00 4E C0",
        "p2 16 A",
    ),
    (
        "FD E0 03 2E 77 77 03 02 58 00 19 00 00",
        0x75,
        "C0 FD E0 03 2E 77 77 03 02 58 00 19 00 00 75 C0",
        "slave hb p1",
    ),
    (
        "FD E0 03 2E 77 77 01 06 40 06 18 00 00 00 00",
        0x64,
        "C0 FD E0 03 2E 77 77 01 06 40 06 18 00 00 00 00 64 C0",
        "slave hb p2",
    ),
    ("FC 1D 00x11", 0x1D, "C0 FC 1D 00 00 00 00 00 00 00 00 00 00 00 1D C0", "idle"),
    (
        "FB EB 77 77 03 2E 00x9",
        0x0A,
        "C0 FB EB 77 77 03 2E 00 00 00 00 00 00 00 00 00 0A C0",
        "kWh request",
    ),
    (
        "FD EB 77 77 00 00 00 77 00 F0 00x5",
        0x40,
        "C0 FD EB 77 77 00 00 00 77 00 F0 00 00 00 00 00 40 C0",
        "VRS",
    ),
    ("FB 1B 00x11", 0x1B, "C0 FB 1B 00 00 00 00 00 00 00 00 00 00 00 1B C0", "FB1B p1"),
    ("FB 1B 00x13", 0x1B, "C0 FB 1B 00x13 1B C0", "FB1B p2"),
    (
        "FD EB 60 61 00 A3 20 EC 00 F1 00x9",
        0x4C,
        "C0 FD EB 60 61 00 A3 20 EC 00 F1 00 00 00 00 00 00 00 00 00 4C C0 FC",
        "20-byte capture + FC",
    ),
]
VECTOR_IDS = [v[3] for v in VECTORS]


def _wire_without_trailer(wire: bytes) -> bytes:
    """Real TWCs may send a byte after the closing C0 (§1.2); encode_frame sends none."""
    return wire[: wire.rindex(0xC0) + 1]


# --- checksum, escaping, encoding --------------------------------------------------------------


def test_checksum_example_from_section_1_2() -> None:
    assert checksum(h("FB E2 77 77 77 00 00 00 00 00 00 00 00")) == 0x47


@pytest.mark.parametrize("body,cs,wire,note", VECTORS, ids=VECTOR_IDS)
def test_vector_checksum(body: str, cs: int, wire: str, note: str) -> None:
    assert checksum(h(body)) == cs


@pytest.mark.parametrize("body,cs,wire,note", VECTORS, ids=VECTOR_IDS)
def test_vector_encode_gives_wire_frame(body: str, cs: int, wire: str, note: str) -> None:
    assert encode_frame(h(body)) == _wire_without_trailer(h(wire))


@pytest.mark.parametrize("body,cs,wire,note", VECTORS, ids=VECTOR_IDS)
def test_vector_decode_gives_body(body: str, cs: int, wire: str, note: str) -> None:
    dec = FrameDecoder()
    assert dec.feed(h(wire)) == [h(body) + bytes([cs])]
    assert dec.stats.frames == 1
    assert dec.stats.bad_length == dec.stats.bad_checksum == dec.stats.bad_escape == 0
    assert accounted(dec)


def test_vector_lengths_are_valid() -> None:
    assert sorted({len(h(b)) + 1 for b, *_ in VECTORS}) == [14, 16, 20]


def test_escape_only_c0_and_db() -> None:
    assert escape(b"\xc0") == b"\xdb\xdc"
    assert escape(b"\xdb") == b"\xdb\xdd"
    # FB/FC/FD/FE and the escape's second bytes are not special (§1.2).
    plain = bytes([0xFB, 0xFC, 0xFD, 0xFE, 0xDC, 0xDD, 0x00, 0xFF])
    assert escape(plain) == plain
    assert escape(b"\xdb\xc0") == b"\xdb\xdd\xdb\xdc"
    assert escape(b"\xc0\xdb") == b"\xdb\xdc\xdb\xdd"


def test_unescape_pairs() -> None:
    assert unescape(b"\xdb\xdc") == b"\xc0"
    assert unescape(b"\xdb\xdd") == b"\xdb"
    assert unescape(b"\x01\xdb\xdd\xdc\x02") == b"\x01\xdb\xdc\x02"


def test_unescape_invalid_pair_becomes_db() -> None:
    # §1.2 / §11.1: DB followed by anything else is "replaced by DB".
    assert unescape(b"\x01\xdb\x05\x02") == b"\x01\xdb\x02"
    assert unescape(b"\x01\xdb") == b"\x01\xdb"


def test_encode_frame_escapes_checksum_too() -> None:
    # Body whose checksum is C0: E0 + E0 = 0x1C0.
    body = bytes([0xFB, 0xE0, 0xE0])
    assert encode_frame(body) == bytes([0xC0, 0xFB, 0xE0, 0xE0, 0xDB, 0xDC, 0xC0])


def test_encode_frame_has_no_trailing_byte() -> None:
    frame = encode_frame(h("FC 1D 00x11"))
    assert frame[0] == 0xC0 and frame[-1] == 0xC0
    assert frame.count(0xC0) == 2


# --- negative tests (§11.1) ---------------------------------------------------------------------


def test_21_byte_message_rejected_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    body = h("FB E0 77 77 03 2E 00x14")
    msg = body + bytes([spec_checksum(body)])
    assert len(msg) == 21
    dec = FrameDecoder()
    with caplog.at_level(logging.WARNING, logger="TWCManager.protocol"):
        assert dec.feed(b"\xc0" + escape(msg) + b"\xc0") == []
    assert dec.stats.bad_length == 1
    assert dec.stats.frames == 0
    assert "unexpected length 21" in caplog.text
    assert accounted(dec)


@pytest.mark.parametrize("body,cs,wire,note", VECTORS[:3], ids=VECTOR_IDS[:3])
def test_flipped_checksum_rejected_and_counted(
    body: str, cs: int, wire: str, note: str, caplog: pytest.LogCaptureFixture
) -> None:
    frame = bytearray(h(wire))
    frame[-2] ^= 0x01  # the checksum byte (not escaped in these vectors)
    dec = FrameDecoder()
    with caplog.at_level(logging.WARNING, logger="TWCManager.protocol"):
        assert dec.feed(bytes(frame)) == []
    assert dec.stats.bad_checksum == 1
    assert dec.stats.frames == 0
    assert "Checksum" in caplog.text
    assert accounted(dec)


def test_db_followed_by_other_byte_counted_and_replaced_by_db() -> None:
    # The 48 A heartbeat has C0 in its data; put a DB in instead and corrupt its escape.
    body = h("FB E0 77 77 03 2E 05 12 DB 00x6")
    cs = spec_checksum(body)
    good_wire = h("C0 FB E0 77 77 03 2E 05 12 DB DD 00x6") + bytes([cs, 0xC0])
    bad_wire = h("C0 FB E0 77 77 03 2E 05 12 DB 01 00x6") + bytes([cs, 0xC0])
    assert FrameDecoder().feed(good_wire) == [body + bytes([cs])]
    dec = FrameDecoder()
    # "DB 01" becomes "DB", so the message is the same and its checksum still matches.
    assert dec.feed(bad_wire) == [body + bytes([cs])]
    assert dec.stats.bad_escape == 1
    assert accounted(dec)


def test_db_at_end_of_candidate_counted() -> None:
    dec = FrameDecoder()
    dec.feed(b"\xc0" + bytes(15) + b"\xdb\xc0")
    assert dec.stats.bad_escape == 1
    assert dec.stats.frames == 0
    assert accounted(dec)


def test_bad_escape_in_valid_length_message_with_wrong_checksum() -> None:
    wire = bytearray(h(VECTORS[10][2]))  # the escaped 48 A frame
    i = wire.index(0xDC)
    wire[i] = 0x05  # DB 05: replaced by DB, so the checksum no longer matches
    dec = FrameDecoder()
    assert dec.feed(bytes(wire)) == []
    assert dec.stats.bad_escape == 1
    assert dec.stats.bad_checksum == 1


def test_c0_after_a_few_bytes_restarts() -> None:
    body, cs, wire, _ = VECTORS[9]
    dec = FrameDecoder()
    assert dec.feed(h("C0 FB E0 77") + h(wire)) == [h(body) + bytes([cs])]
    assert dec.stats.garbage == 1
    assert dec.stats.garbage_bytes == 3
    assert accounted(dec)


# --- streaming ---------------------------------------------------------------------------------


def _bodies() -> list[bytes]:
    return [h(b) + bytes([cs]) for b, cs, *_ in VECTORS]


def _wires() -> list[bytes]:
    return [_wire_without_trailer(h(w)) for _, _, w, _ in VECTORS]


def test_garbage_before_and_between_frames() -> None:
    w = _wires()
    stream = b"\x01\x02\x03" + w[0] + b"\x55" * 5 + w[1] + b"\xfe\xf8" + w[2]
    dec = FrameDecoder()
    assert dec.feed(stream) == _bodies()[:3]
    assert dec.stats.garbage_bytes == 3 + 5 + 2
    assert dec.stats.garbage == 2  # the two between-frame runs (the first is before any C0)
    assert accounted(dec)


def test_shared_delimiter_gives_both_frames() -> None:
    a, b = _wires()[0], _wires()[12]
    stream = a + b[1:]  # C0 A C0 B C0
    assert stream.count(0xC0) == 3
    dec = FrameDecoder()
    assert dec.feed(stream) == [_bodies()[0], _bodies()[12]]
    assert dec.stats.garbage == 0
    assert accounted(dec)


def test_each_frame_followed_by_fe() -> None:
    stream = b"".join(w + b"\xfe" for w in _wires())
    dec = FrameDecoder()
    assert dec.feed(stream) == _bodies()
    n = len(VECTORS)
    assert dec.stats.garbage == n - 1  # the last FE waits for a C0
    assert dec.pending_bytes == 1
    assert dec.feed(b"\xc0") == []
    assert dec.stats.garbage == n and dec.stats.garbage_bytes == n
    assert accounted(dec)


def test_back_to_back_delimiters_are_not_garbage() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"\xc0\xc0\xc0" + _wires()[0] + b"\xc0") == [_bodies()[0]]
    assert dec.stats.garbage == dec.stats.garbage_bytes == 0
    assert accounted(dec)


def _split_stream() -> bytes:
    # Escapes (48 A), FE trailers, garbage, a shared delimiter and a bad checksum.
    w = _wires()
    bad = bytearray(w[1])
    bad[-2] ^= 0xFF
    return (
        b"\x11\xdb"
        + w[10]
        + b"\xfe"
        + w[0]
        + w[12][1:]
        + b"\x55\xdb\xdc"
        + bytes(bad)
        + w[19]
        + b"\xfc"
        + w[10]
    )


def test_split_at_every_position_gives_identical_output() -> None:
    stream = _split_stream()
    whole = FrameDecoder()
    expected = whole.feed(stream)
    assert len(expected) == 5
    for i in range(len(stream) + 1):
        dec = FrameDecoder()
        got = dec.feed(stream[:i]) + dec.feed(stream[i:])
        assert got == expected, f"split at {i}"
        assert dec.stats == whole.stats, f"split at {i}"


def test_every_split_inside_escape_pair() -> None:
    wire = _wires()[10]
    i = wire.index(0xDB)
    dec = FrameDecoder()
    assert dec.feed(wire[: i + 1]) == []
    assert dec.feed(wire[i + 1 :]) == [_bodies()[10]]
    assert dec.stats.bad_escape == 0


def test_byte_by_byte_gives_identical_output() -> None:
    stream = _split_stream()
    whole = FrameDecoder()
    expected = whole.feed(stream)
    dec = FrameDecoder()
    got: list[bytes] = []
    for byte in stream:
        got += dec.feed(bytes([byte]))
        assert accounted(dec)
    assert got == expected
    assert dec.stats == whole.stats


def test_oversize_candidate_dropped_and_memory_bounded() -> None:
    dec = FrameDecoder()
    noise = bytes([0x55]) * 500
    dec.feed(b"\xc0")
    for byte in noise:
        dec.feed(bytes([byte]))
        assert dec.pending_bytes <= MAX_CANDIDATE_BYTES
    assert dec.feed(_wires()[0]) == [_bodies()[0]]
    assert dec.stats.oversize == 1
    assert dec.stats.dropped_bytes == 500
    assert accounted(dec)


def test_largest_escaped_valid_message_is_not_oversize() -> None:
    # A 20-byte message of C0s escapes to 40 raw bytes; it must still reach the checks.
    body = bytes([0xFD, 0xEB]) + bytes([0xC0]) * 17
    msg = body + bytes([spec_checksum(body)])
    wire = encode_frame(body)
    dec = FrameDecoder()
    assert dec.feed(wire) == [msg]
    assert dec.stats.oversize == 0


def test_flush_drops_partial_candidate() -> None:
    wire = _wires()[0]
    dec = FrameDecoder()
    assert dec.feed(wire[:7]) == []
    assert dec.flush() == 6
    assert dec.pending_bytes == 0
    assert dec.stats.flushed == 1
    assert accounted(dec)
    # After a flush bytes are garbage until a C0, as at start.
    assert dec.feed(wire[7:] + wire) == [_bodies()[0]]
    assert accounted(dec)


def test_short_candidate_logged_at_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    dec = FrameDecoder()
    with caplog.at_level(logging.DEBUG, logger="TWCManager.protocol"):
        dec.feed(_wires()[0] + b"\xfe" + _wires()[0])
    assert dec.stats.garbage == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- properties (hypothesis) -------------------------------------------------------------------

# Bytes with the special values over-represented, so escapes are exercised often.
_BYTE = st.one_of(st.sampled_from([0xC0, 0xDB, 0xDC, 0xDD, 0xFE]), st.integers(0, 255))
_NON_C0 = _BYTE.filter(lambda b: b != 0xC0)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    length = draw(st.sampled_from([n - 1 for n in VALID_LENGTHS]))
    return bytes(draw(st.lists(_BYTE, min_size=length, max_size=length)))


def _garbage(max_size: int) -> st.SearchStrategy[bytes]:
    return st.lists(_NON_C0, max_size=max_size).map(bytes)


@given(st.lists(_BYTE, max_size=60).map(bytes))
def test_escape_round_trip(data: bytes) -> None:
    escaped = escape(data)
    assert 0xC0 not in escaped
    assert unescape(escaped) == data


@given(bodies())
def test_encode_decode_round_trip(body: bytes) -> None:
    wire = encode_frame(body)
    assert wire.count(0xC0) == 2  # only the delimiters
    dec = FrameDecoder()
    assert dec.feed(wire) == [body + bytes([spec_checksum(body)])]
    assert dec.stats.frame_bytes == len(wire) - 2
    assert accounted(dec)


@st.composite
def streams(draw: st.DrawFn, max_garbage: int) -> tuple[list[bytes], list[bytes]]:
    """Frames with garbage (no C0) before, between and after them."""
    frames = draw(st.lists(bodies(), max_size=6))
    garbage = [draw(_garbage(max_garbage)) for _ in range(len(frames) + 1)]
    return frames, garbage


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    out, prev = [], 0
    for p in points + [len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


@settings(max_examples=200)
@given(streams(max_garbage=80), st.lists(st.integers(0, 1000), max_size=30))
def test_split_feed_invariance(sg: tuple[list[bytes], list[bytes]], cuts: list[int]) -> None:
    frames, garbage = sg
    stream = garbage[0] + b"".join(encode_frame(f) + g for f, g in zip(frames, garbage[1:]))
    whole = FrameDecoder()
    expected = whole.feed(stream)
    dec = FrameDecoder()
    got: list[bytes] = []
    for chunk in _chunks(stream, cuts):
        got += dec.feed(chunk)
        assert accounted(dec)
    assert got == expected
    assert dec.stats == whole.stats
    assert dec.pending_bytes == whole.pending_bytes


@settings(max_examples=200)
@given(streams(max_garbage=13), st.lists(st.integers(0, 1000), max_size=30))
def test_frames_recovered_among_short_garbage(
    sg: tuple[list[bytes], list[bytes]], cuts: list[int]
) -> None:
    # Garbage of at most 13 bytes can never be a message: every frame comes out, in order,
    # and every garbage byte is counted as garbage.
    frames, garbage = sg
    stream = garbage[0] + b"".join(encode_frame(f) + g for f, g in zip(frames, garbage[1:]))
    stream += b"\xc0"  # close the trailing garbage
    dec = FrameDecoder()
    got: list[bytes] = []
    for chunk in _chunks(stream, cuts):
        got += dec.feed(chunk)
    assert got == [f + bytes([spec_checksum(f)]) for f in frames]
    if frames:
        assert dec.stats.garbage_bytes == sum(len(g) for g in garbage)
    assert dec.stats.dropped_bytes == 0
    assert dec.pending_bytes == 0
    assert accounted(dec)


@settings(max_examples=300)
@given(st.lists(_BYTE, max_size=400).map(bytes), st.lists(st.integers(0, 400), max_size=20))
def test_random_bytes_never_raise_and_every_byte_is_accounted(
    data: bytes, cuts: list[int]
) -> None:
    dec = FrameDecoder()
    got: list[bytes] = []
    for chunk in _chunks(data, cuts):
        got += dec.feed(chunk)
        assert accounted(dec)
        assert dec.pending_bytes <= MAX_CANDIDATE_BYTES
    s = dec.stats
    assert s.bytes_in == len(data)
    assert s.delimiter_bytes == data.count(0xC0)
    assert s.frames == len(got)
    for msg in got:
        assert len(msg) in VALID_LENGTHS
        assert msg[-1] == spec_checksum(msg[:-1])
    dec.flush()
    assert dec.pending_bytes == 0
    assert s.accounted_bytes == s.bytes_in
