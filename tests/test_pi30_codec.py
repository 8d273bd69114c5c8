"""PI30 frames and answers against the vectors of shared/spec/pi30.md §2, and properties:
random bytes never raise, a frame with a wrong CRC never yields a value."""
from __future__ import annotations

import pytest
from hypothesis import assume, given, strategies as st

from TWCManager.pi30 import codec

CR = 0x0D

QPIGS = ("000.0 00.0 230.0 49.9 0161 0119 003 460 57.50 012 100 0069 0014 103.8 57.45 00000 "
         "00110110 00 00 00856 010")
QPIRI = "230.0 21.7 230.0 50.0 21.7 5000 4000 48.0 46.0 42.0 56.4 54.0 0 10 010 1 0 0 6 01 0 0 54.0 0 1"
QPIWS = "00000100000000001000000000000000"


@pytest.mark.parametrize("command, wire", [
    ("QPI", "51 50 49 be ac 0d"),
    ("QPIGS", "51 50 49 47 53 b7 a9 0d"),
    ("QPIRI", "51 50 49 52 49 f8 54 0d"),
    ("QMOD", "51 4d 4f 44 49 c1 0d"),
    ("QPIWS", "51 50 49 57 53 b4 da 0d"),
    ("POP00", "50 4f 50 30 30 c2 48 0d"),
    ("POP01", "50 4f 50 30 31 d2 69 0d"),
    ("POP02", "50 4f 50 30 32 e2 0b 0d"),     # 0x0A fixed up to 0x0B
])
def test_request_frames(command, wire):
    assert codec.request(command) == bytes.fromhex(wire)


@pytest.mark.parametrize("value, crc", [("PCP00", "8d7a"), ("PCP01", "9d5b"), ("PCP02", "ad38"),
                                        ("PCP03", "bd19")])
def test_charger_priority_crcs(value, crc):
    assert codec.request(value)[-3:-1] == bytes.fromhex(crc)


def test_crc_check_value():
    import binascii
    assert binascii.crc_hqx(b"123456789", 0) == 0x31C3


@pytest.mark.parametrize("payload, crc", [
    ("PI30", "9a0b"), ("ACK", "3920"), ("NAK", "7373"), ("S", "e5d9"), ("L", "0607"),
    ("B", "e7c9"), (QPIGS, "248c"), (QPIRI, "6f7e"), (QPIWS, "56a6")])
def test_answer_vectors_decode(payload, crc):
    frame = b"(" + payload.encode() + bytes.fromhex(crc) + b"\r"
    assert codec.AnswerDecoder().feed(frame) == [codec.Answer(payload)]


def frame(payload: str) -> bytes:
    body = b"(" + payload.encode()
    return body + codec.crc_bytes(body) + b"\r"


def test_split_anywhere_nul_padding_and_garbage_before_the_frame():
    wire = b"\x00\xffjunk" + frame(QPIGS) + b"\x00" * 5 + frame("ACK")
    for cut in range(len(wire) + 1):
        decoder = codec.AnswerDecoder()
        answers = decoder.feed(wire[:cut]) + decoder.feed(wire[cut:])
        assert [a.payload for a in answers] == [QPIGS, "ACK"]
    # hidraw: 8-byte reports, the last NUL-padded
    reports = [frame(QPIRI)[i:i + 8].ljust(8, b"\0") for i in range(0, len(frame(QPIRI)), 8)]
    decoder = codec.AnswerDecoder()
    assert [a.payload for r in reports for a in decoder.feed(r)] == [QPIRI]


def test_ack_nak_and_a_bare_nak():
    decoder = codec.AnswerDecoder()
    ack, nak, bare = decoder.feed(frame("ACK") + frame("NAK") + b"(NAK\r")
    assert ack.ack and not ack.nak and nak.nak and bare.nak


def test_a_wrong_crc_is_refused_with_a_reason():
    bad = bytearray(frame(QPIGS))
    bad[-2] ^= 0x01
    (answer,) = codec.AnswerDecoder().feed(bytes(bad))
    assert answer.payload is None and "CRC" in answer.error


@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data):
    for answer in codec.AnswerDecoder().feed(data):
        assert (answer.payload is None) == (answer.error is not None)


@given(st.text(alphabet="0123456789. ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=120),
       st.integers(1, 0xFFFF))
def test_a_frame_with_a_wrong_crc_never_yields_a_value(payload, flip):
    good = frame(payload)
    wrong = (int.from_bytes(good[-3:-1], "big") ^ flip).to_bytes(2, "big")
    assume(CR not in wrong)   # a CR there would end the frame early: another case
    answers = codec.AnswerDecoder().feed(good[:-3] + wrong + b"\r")
    assert [(a.payload, "CRC" in a.error) for a in answers] == [(None, True)]


def test_qpigs():
    status = codec.parse_qpigs(QPIGS)
    assert (status.grid_v, status.ac_out_w, status.battery_v, status.battery_soc_pct) == \
        (0.0, 119.0, 57.5, 100.0)
    assert (status.pv_v, status.pv_w, status.status_bits) == (103.8, 856.0, "00110110")
    assert status.battery_w == pytest.approx(57.5 * 12)


def test_qpigs_older_and_newer_firmwares():
    fields = QPIGS.split()
    assert codec.parse_qpigs(" ".join(fields[:17])).pv_w is None        # stops after 16
    assert codec.parse_qpigs(QPIGS + " 00000 000.0 00.00").pv_w == 856  # PV2 fields: ignored
    with pytest.raises(codec.ParseError, match="16 fields"):
        codec.parse_qpigs(" ".join(fields[:16]))
    with pytest.raises(codec.ParseError, match="field 8"):
        codec.parse_qpigs(QPIGS.replace("57.50", "5x.50"))


def test_qpiri_priorities_by_name():
    ratings = codec.parse_qpiri(QPIRI)
    assert (ratings.output_priority, ratings.charger_priority) == ("utility", "utility")
    assert (ratings.battery_rating_v, ratings.battery_float_v, ratings.max_charge_a) == \
        (48.0, 54.0, 10.0)
    fields = QPIRI.split()
    fields[16], fields[17] = "2", "3"
    ratings = codec.parse_qpiri(" ".join(fields))
    assert (ratings.output_priority, ratings.charger_priority) == ("sbu", "solar-only")
    fields[17] = "4"
    with pytest.raises(codec.ParseError, match="charger source priority"):
        codec.parse_qpiri(" ".join(fields))


def test_qmod_qpiws_qflag_and_texts():
    assert [codec.parse_qmod(m) for m in "PSLBFHDY"] == list("PSLBFHDY")
    with pytest.raises(codec.ParseError):
        codec.parse_qmod("X")
    assert codec.parse_qpiws(QPIWS) == ["line fail", "overload"]
    assert codec.parse_qflag("EakxyDbjuvz") == {
        "buzzer": True, "lcd reset to default": True, "lcd backlight": True,
        "primary source interrupt alarm": True, "overload bypass": False, "power saving": False,
        "overload restart": False, "over temperature restart": False,
        "record fault code": False}
    assert codec.parse_text("VERFW:00072.70", "QVFW") == "00072.70"
    assert codec.parse_text("PI30", "QPI") == "PI30"


def test_setters():
    assert [codec.output_priority_command(n) for n in ("utility", "solar", "sbu")] == \
        ["POP00", "POP01", "POP02"]
    assert codec.charger_priority_command("solar-utility") == "PCP02"
    with pytest.raises(ValueError, match="expected one of"):
        codec.output_priority_command("battery")
