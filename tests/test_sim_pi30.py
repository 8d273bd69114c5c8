"""The simulated PI30 inverter: its battery under both priorities (tables), its answers through
our codec and link on a real pty, its faults, and `python -m TWCManager.sim.pi30` with the
`pi30` command against it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from TWCManager.pi30 import codec
from TWCManager.pi30.link import NoAnswer, Pi30Link, Refused
from TWCManager.sim.pi30 import Pi30Model, Pi30Simulator
from TWCManager.sim.runner import open_pty

from .test_pi30_link import _answers
from .util import wait_until

ROOT = Path(__file__).resolve().parent.parent


def model(pv_w, load_w, **kw) -> Pi30Model:
    return Pi30Model(pv_w=lambda t: pv_w, load_w=lambda t: load_w, **kw)


@pytest.mark.parametrize("kw, pv_w, load_w, grid_w, battery_w, mode", [
    # SBU, sunny: the load from PV, the rest charges the battery; no grid.
    (dict(output_priority=2, charger_priority=3), 3000, 800, 0, 2200, "B"),
    # SBU at night above the back-to-grid charge: the battery carries the load.
    (dict(output_priority=2, charger_priority=3, soc_pct=60), 0, 800, 0, -800, "B"),
    # SBU below it: the grid carries the load, the battery rests (solar-only charger).
    (dict(output_priority=2, charger_priority=3, soc_pct=15), 0, 800, 800, 0, "L"),
    # Utility first: the load from the grid even in the sun; PV charges the battery.
    (dict(output_priority=0, charger_priority=3), 3000, 800, 800, 2500, "L"),
    # Solar first at night: the load from the grid; the battery is not used.
    (dict(output_priority=1, charger_priority=3), 0, 800, 800, 0, "L"),
    # Charger "utility first": the grid charges the battery at its AC limit.
    (dict(output_priority=2, charger_priority=0, soc_pct=60), 0, 800, 1500, 700, "L"),
    # Solar + utility, some sun: PV and the grid together, up to the charge limit.
    (dict(output_priority=2, charger_priority=2, soc_pct=60), 1000, 0, 1500, 2500, "L"),
    # The grid down: the battery carries the load whatever the priorities say.
    (dict(output_priority=0, charger_priority=0, grid_v=0), 0, 800, 0, -800, "B"),
])
def test_battery_flows_by_priority(kw, pv_w, load_w, grid_w, battery_w, mode):
    m = model(pv_w, load_w, **kw)
    soc = m.soc_pct
    m.step(60.0)
    assert m.flows["grid"] == pytest.approx(grid_w) and m.flows["battery"] == pytest.approx(battery_w)
    assert m.mode == mode
    assert m.soc_pct == pytest.approx(soc + battery_w * 60 / 36 / m.capacity_wh)


def test_a_full_battery_takes_nothing_and_an_empty_one_gives_nothing():
    full = model(3000, 500, soc_pct=100.0)
    full.step(10)
    assert full.flows["battery"] == 0 and full.soc_pct == 100
    empty = model(0, 500, soc_pct=0.0, grid_v=0)
    empty.step(10)
    assert empty.flows["battery"] == 0 and empty.mode == "S"


@pytest.fixture
def served():
    pty = open_pty()
    m = model(1200, 400, soc_pct=80.0)
    m.step(1.0)
    sim = Pi30Simulator(m, pty.master_fd, step_s=3600).start()
    link = Pi30Link(pty.slave_path, timeout_s=1.0)
    yield sim, link
    link.close()
    sim.stop()
    pty.close()


def test_every_answer_decodes_through_our_codec(served):
    sim, link = served
    status = codec.parse_qpigs(link.exchange("QPIGS"))
    assert status.battery_soc_pct == 80 and status.ac_out_w == 400 and status.pv_w == 1200
    assert status.battery_charge_a == round(800 / sim.model.battery_v)
    ratings = codec.parse_qpiri(link.exchange("QPIRI"))
    assert (ratings.output_priority, ratings.charger_priority) == ("sbu", "solar-only")
    assert codec.parse_qmod(link.exchange("QMOD")) == "B"
    assert codec.parse_qpiws(link.exchange("QPIWS")) == []
    assert codec.parse_qflag(link.exchange("QFLAG"))["buzzer"] is True
    assert link.exchange("QPI") == "PI30" and codec.parse_text(link.exchange("QVFW"), "QVFW")


def test_setters_and_nak(served):
    sim, link = served
    assert link.exchange("POP00") == "ACK" and link.exchange("PCP02") == "ACK"
    ratings = codec.parse_qpiri(link.exchange("QPIRI"))
    assert (ratings.output_priority, ratings.charger_priority) == ("utility", "solar-utility")
    with pytest.raises(Refused):
        link.exchange("POP07")
    with pytest.raises(Refused):
        link.exchange("QXYZ")


def test_faults_silence_bad_crc_nak_and_baud_timing(served):
    sim, link = served
    sim.silent = True
    with pytest.raises(NoAnswer, match="no answer"):
        link.exchange("QPI")
    sim.silent, sim.bad_crc = False, True
    with pytest.raises(NoAnswer, match="bad answer twice"):
        link.exchange("QPI")
    sim.bad_crc, sim.nak_all = False, True
    with pytest.raises(Refused):
        link.exchange("QPIGS")
    sim.nak_all, sim.baud_timing = False, True
    link.timeout_s = 3.0
    assert codec.parse_qpigs(link.exchange("QPIGS")).battery_soc_pct == 80


def test_the_simulator_command_with_the_pi30_command(tmp_path):
    link = tmp_path / "ttyPI30"
    sim = subprocess.Popen([sys.executable, "-m", "TWCManager.sim.pi30", "--pty", "--link",
                            str(link), "--soc", "42"], cwd=ROOT, stdout=subprocess.PIPE,
                           text=True)
    try:
        assert wait_until(lambda: link.exists(), timeout_s=20)
        done = subprocess.run([sys.executable, "-m", "TWCManager.pi30", "--port", str(link),
                               "--json", "status"], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        status = json.loads(done.stdout)
        assert status["output_priority"] == "sbu" and 41 <= status["battery_soc_pct"] <= 43
        set_done = subprocess.run([sys.executable, "-m", "TWCManager.pi30", "--port", str(link),
                                   "set", "output-priority", "utility"], cwd=ROOT,
                                  capture_output=True, text=True, timeout=60)
        assert set_done.returncode == 0 and "read back" in set_done.stdout
    finally:
        sim.terminate()
        sim.wait(10)
        if os.path.islink(link):
            os.unlink(link)


def test_unplugged_then_plugged_back_the_link_reopens(tmp_path):
    sim = Pi30Simulator(Pi30Model(soc_pct=50.0), link=str(tmp_path / "ttyPI30"), step_s=3600)
    sim.start()
    link = Pi30Link(str(tmp_path / "ttyPI30"), timeout_s=0.5)
    try:
        assert link.exchange("QPI") == "PI30"
        sim.unplug()
        assert not (tmp_path / "ttyPI30").exists()
        with pytest.raises(NoAnswer):
            link.exchange("QPI")
        sim.plug()
        assert wait_until(lambda: _answers(link), timeout_s=5) and link.opens == 2
    finally:
        link.close()
        sim.stop()
