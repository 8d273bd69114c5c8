"""The simulator on real pseudo-terminals: a test plays master through pyserial."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from TWCManager.twc.messages import (
    KwhReport,
    KwhRequest,
    MasterHeartbeat,
    MasterLinkready2,
    SlaveHeartbeat,
    SlaveLinkready,
    heartbeat_command,
    to_wire,
)
from TWCManager.sim import Car, SimBus, SimulatedTWC, Sniffer, open_pty

from .util import read_messages_until, wait_until

MASTER = 0x7777
REPO = Path(__file__).resolve().parent.parent
REPLY_DEADLINE_S = 2.0


def open_port(path: str) -> serial.Serial:
    # What the daemon does: 9600 8N1, short reads.
    return serial.Serial(path, 9600, timeout=0.05)


def is_heartbeat_from(twcid: int):
    return lambda m: isinstance(m, SlaveHeartbeat) and m.sender_id == twcid


@pytest.fixture
def bus(tmp_path):
    twc = SimulatedTWC(0x032E, 0x01, protocol=2, max_amps=32.0, car=Car("charging"))
    sim = SimBus.on_pty([twc], link_path=str(tmp_path / "ttyTWC"))
    sim.start()
    yield sim
    assert sim.close(timeout_s=2.0)


def test_open_pty_links_and_unlinks(tmp_path):
    link = tmp_path / "tty"
    pair = open_pty(str(link))
    try:
        assert os.readlink(link) == pair.slave_path
        assert os.path.exists(pair.slave_path)
        with open_port(str(link)) as port:
            os.write(pair.master_fd, b"\xc0\x01")
            assert wait_until(lambda: port.in_waiting >= 2, 1.0)
            assert port.read(2) == b"\xc0\x01"  # raw: nothing translated
    finally:
        pair.close()
    assert not os.path.lexists(link)


def test_master_heartbeat_gets_a_valid_slave_heartbeat(bus):
    with open_port(bus.link_path) as port:
        port.write(to_wire(MasterHeartbeat(MASTER, 0x032E, heartbeat_command(0x09, 16.0, 2))))
        reply, _ = read_messages_until(port, is_heartbeat_from(0x032E), REPLY_DEADLINE_S)
    assert reply is not None, "no FD E0 within the deadline"
    assert reply.receiver_id == MASTER
    assert len(reply.data) == 9
    assert reply.state == 0x08 and reply.limit_amps == 16.0
    assert bus.wait_for(
        lambda log: any(d == "tx" and isinstance(m, SlaveHeartbeat) for _, d, m in log), 1.0
    )
    directions = [(d, type(m).__name__) for _, d, m in bus.log]
    assert ("rx", "MasterHeartbeat") in directions
    assert directions.index(("rx", "MasterHeartbeat")) < directions.index(("tx", "SlaveHeartbeat"))
    assert bus.twcs[0].heartbeats_received == 1
    assert bus.errors == []


def test_linkready2_answered_and_kwh_over_the_line(bus):
    with open_port(bus.link_path) as port:
        sent_at = time.monotonic()
        port.write(to_wire(MasterLinkready2(MASTER, 0x77)))
        linkready, _ = read_messages_until(port, lambda m: isinstance(m, SlaveLinkready), 1.0)
        assert linkready is not None
        assert time.monotonic() - sent_at < 0.5
        assert linkready.protocol == 2 and linkready.max_amps == 32.0
        port.write(to_wire(KwhRequest(MASTER, 0x032E)))
        report, _ = read_messages_until(port, lambda m: isinstance(m, KwhReport), REPLY_DEADLINE_S)
    assert report == KwhReport(0x032E, 119, (230, 230, 230), 16)


def test_two_units_on_one_line(tmp_path):
    units = [
        SimulatedTWC(0x0A01, 1, protocol=1, max_amps=80.0, car=Car("charging")),
        SimulatedTWC(0x0A02, 2, protocol=1, max_amps=80.0, car=None, answer_debug=False),
    ]
    with SimBus.on_pty(units, link_path=str(tmp_path / "tty")) as sim, open_port(sim.link_path) as port:
        for twcid in (0x0A02, 0x0A01):
            port.write(to_wire(MasterHeartbeat(MASTER, twcid, heartbeat_command(0x05, 20.0, 1))))
            reply, seen = read_messages_until(port, is_heartbeat_from(twcid), REPLY_DEADLINE_S)
            assert reply is not None and len(reply.data) == 7
            others = [m for m in seen if isinstance(m, SlaveHeartbeat) and m.sender_id != twcid]
            assert others == []
        assert [u.heartbeats_received for u in units] == [1, 1]


def test_bus_sleeps_instead_of_polling(bus):
    # An idle bus must not burn CPU: its thread sleeps until the next 10 s linkready.
    cpu_before = time.process_time()
    wall_before = time.monotonic()
    wait_until(lambda: False, 0.5, interval_s=0.1)
    cpu_s = time.process_time() - cpu_before
    assert time.monotonic() - wall_before >= 0.5
    assert cpu_s < 0.1


def test_stop_joins_quickly(tmp_path):
    sim = SimBus.on_pty([SimulatedTWC(0x032E, 1)], link_path=str(tmp_path / "tty"))
    sim.start()
    assert wait_until(lambda: len(sim.log) >= 1, 1.0)  # the start-up linkready
    started = time.monotonic()
    assert sim.stop(timeout_s=2.0)
    assert time.monotonic() - started < 0.5
    assert not sim.running
    sim.close()
    assert not os.path.lexists(tmp_path / "tty")


def test_wait_for_times_out(bus):
    started = time.monotonic()
    assert bus.wait_for(lambda log: False, 0.2) is False
    assert 0.2 <= time.monotonic() - started < 1.0


def test_close_line_and_reopen_keep_the_link_name(bus):
    link = bus.link_path
    with open_port(link) as port:
        port.write(to_wire(MasterHeartbeat(MASTER, 0x032E, bytes(9))))
        assert read_messages_until(port, is_heartbeat_from(0x032E), REPLY_DEADLINE_S)[0]
        bus.close_line()
        assert not os.path.lexists(link)
        # The daemon's open port now fails, as with an unplugged USB adapter.
        with pytest.raises((serial.SerialException, OSError)):
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                port.write(b"\xc0")
                port.read(1)
    pair = bus.reopen_line()
    assert os.readlink(link) == pair.slave_path
    assert bus.slave_path == pair.slave_path
    with open_port(link) as port:
        port.write(to_wire(MasterHeartbeat(MASTER, 0x032E, bytes(9))))
        reply, _ = read_messages_until(port, is_heartbeat_from(0x032E), REPLY_DEADLINE_S)
    assert reply is not None
    assert bus.twcs[0].heartbeats_received == 2


def test_sniffer_prints_a_line_per_frame():
    pair = open_pty()
    out = io.StringIO()
    sniffer = Sniffer(pair, out, stamp=False)
    sniffer.start()
    try:
        frames = [
            MasterLinkready2(MASTER, 0x77),
            SlaveLinkready(0x032E, 0x01, 80.0, 1),
            MasterHeartbeat(MASTER, 0x032E, heartbeat_command(0x09, 8.0, 2)),
            SlaveHeartbeat(0x032E, MASTER, bytes.fromhex("01 0320 02D0 0000 0000")),
            KwhReport(0x032E, 20, (246, 0, 0)),
        ]
        with open_port(pair.slave_path) as port:
            for msg in frames:
                port.write(to_wire(msg))
            port.write(b"\xfe")  # trailing garbage of real TWCs: no line for it
            assert wait_until(lambda: sniffer.frames >= len(frames), REPLY_DEADLINE_S)
            time.sleep(0.05)  # a stray extra line would show up by now
    finally:
        assert sniffer.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "master linkready2 from 7777 sign 77",
        "slave linkready 032E sign 01 80.00A protocol 1",
        "MHB 7777 to 032E: 09 00.00/08.00A 0000 0000",
        "SHB 032E: 01 07.20/08.00A 0000 0000  M: 09 00.00/08.00A 0000 0000",
        "VRS 032E: 20kWh 246V 0V 0V",
    ]


def test_cli_answers_a_heartbeat_and_exits_on_sigint(tmp_path):
    link = tmp_path / "tty"
    proc = subprocess.Popen(
        [sys.executable, "-m", "TWCManager.sim", "--pty", "--link", str(link)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: os.path.lexists(link) or proc.poll() is not None, 10.0)
        assert proc.poll() is None, proc.stderr.read()
        with open_port(str(link)) as port:
            port.write(to_wire(MasterHeartbeat(MASTER, 0x032E, heartbeat_command(0x09, 10.0, 2))))
            reply, _ = read_messages_until(port, is_heartbeat_from(0x032E), REPLY_DEADLINE_S)
        assert reply is not None and reply.limit_amps == 10.0
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=5.0)
        assert time.monotonic() - sent_at < 3.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5.0)
    assert proc.returncode == 0, err
    assert f"link: {link}" in out
    assert "Traceback" not in err
    assert not os.path.lexists(link)
