"""The Linky's TIC (historique mode) as a local Tempo source: Enedis' checksum vector, groups
split anywhere, damaged groups dropped, the parity bit of a port opened 8N1 ignored, PTEC and
DEMAIN read as today's and tomorrow's colour (Tempo days: 06:00 -> 06:00); then the source on a
pty teaching the calendar, and the daemon showing it."""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta

import pytest
from hypothesis import given, strategies as st

from TWCManager.sim import open_pty
from TWCManager.tariff.calendar import TempoCalendar
from TWCManager.tariff.linky import LinkySource, TicDecoder, checksum, colours_from, parse_group
from TWCManager.tariff.tempo import PARIS, tempo_day

from .fakes import FakeClock
from .util import wait_until


def group(label: str, value: str, good: bool = True) -> bytes:
    body = f"{label} {value}".encode()
    check = checksum(body) if good else checksum(body) ^ 1
    return b"\n" + body + b" " + bytes([check]) + b"\r"


def frame(ptec: str, demain: str, bad: bool = False) -> bytes:
    return (b"\x02" + group("ADCO", "031664001115") + group("OPTARIF", "BBR(")
            + group("PTEC", ptec, good=not bad) + group("DEMAIN", demain)
            + group("IINST", "002") + group("PAPP", "00390") + b"\x03")


def test_enedis_checksum_vector_and_parsing():
    assert checksum(b"ADCO 031664001115") == ord("3")       # Enedis' own test vector
    assert parse_group(b"ADCO 031664001115 3") == ("ADCO", "031664001115")
    assert parse_group(b"ADCO 031664001115 4") is None
    assert parse_group(b"PTEC HPJR") is None


def test_decoder_takes_bytes_split_anywhere_and_drops_damage():
    data = b"garbage\x03" + frame("HPJB", "ROUG") + frame("HPJB", "ROUG", bad=True)
    decoder = TicDecoder()
    groups = []
    for i in range(0, len(data), 7):
        groups += decoder.feed(data[i:i + 7])
    labels = [label for label, _ in groups]
    assert labels.count("PTEC") == 1 and labels.count("DEMAIN") == 2
    assert decoder.bad_groups == 1
    parity = bytes(b | 0x80 if bin(b).count("1") % 2 else b for b in frame("HCJW", "----"))
    assert ("PTEC", "HCJW") in TicDecoder().feed(parity)      # a port opened 8N1


@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data):
    TicDecoder().feed(data)


@pytest.mark.parametrize("ptec, demain, today, tomorrow", [
    ("HPJB", "ROUG", "BLUE", "RED"), ("HCJW", "----", "WHITE", None),
    ("HPJR", "BLAN", "RED", "WHITE"), ("TH..", "BLEU", None, "BLUE"),
])
def test_ptec_and_demain(ptec, demain, today, tomorrow):
    assert colours_from(TicDecoder().feed(frame(ptec, demain)))[:2] == (today, tomorrow)


def test_the_source_on_a_pty_teaches_the_calendar(tmp_path):
    pty = open_pty(str(tmp_path / "ttyLINKY"))
    # 03:00 on the 4th is still the Tempo day of the 3rd: PTEC is the 3rd's, DEMAIN the 4th's.
    clock = FakeClock(datetime(2026, 12, 4, 3, 0, tzinfo=PARIS))
    calendar = TempoCalendar()
    source = LinkySource(pty.link_path, calendar, clock.now)
    source.start()
    try:
        day = tempo_day(clock.now())

        def learnt():
            # The meter sends a frame every ~1.5 s; pyserial drops what came before its open.
            os.write(pty.master_fd, frame("HCJR", "BLAN"))
            return calendar.get(day + timedelta(days=1)) is not None
        assert wait_until(learnt, timeout_s=10), source.status()
        assert calendar.get(day).colour == "RED" and calendar.get(day).source == "linky"
        assert calendar.get(day + timedelta(days=1)).colour == "WHITE"
        assert day.isoformat() == "2026-12-03" and source.status()["ptec"] == "HCJR"
    finally:
        source.stop()
        pty.close()


def test_a_missing_port_is_reported_and_retried(tmp_path):
    source = LinkySource(str(tmp_path / "nope"), TempoCalendar(),
                         lambda: datetime.now(PARIS))
    source.start()
    try:
        assert wait_until(lambda: source.status()["last_error"], timeout_s=10)
        assert "cannot open" in source.status()["last_error"]
    finally:
        source.stop()


def test_the_daemon_learns_today_from_the_linky(tmp_path):
    from TWCManager.ipc_client import IpcClient

    from .test_daemon_pty import Rig, charging_unit

    pty = open_pty(str(tmp_path / "ttyLINKY"))
    try:
        with Rig(tmp_path, [charging_unit()], **{
                "tariff.kind": "tempo", "tempo.source": "manual",
                "tempo.linky_port": pty.link_path,
                "tempo.cache_file": str(tmp_path / "tempo.json")}) as rig:
            client = IpcClient(rig.ipc_path)

            def tariff():
                os.write(pty.master_fd, frame("HPJW", "BLEU"))
                return json.loads(client.query("getTariffStatus", timeout_s=5, packets=True))
            assert wait_until(lambda: tariff()["tempo_tomorrow"] == "BLUE", timeout_s=10)
            status = tariff()
            assert status["tempo_today"] == "WHITE" and status["today"]["source"] == "linky"
            assert status["linky"]["ptec"] == "HPJW"
    finally:
        pty.close()
