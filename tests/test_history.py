"""The home's energy totals and history (TWCManager.core.energy_book, TWCManager.history): the
split of each reading into sun and grid for the car, exported and bought (per price); totals
that only grow and survive a restart, per day, one point a minute; a database that cannot be
written loses nothing; and the daemon keeping them across a restart."""
from __future__ import annotations

import logging
import sqlite3

import pytest
from hypothesis import given, strategies as st

from TWCManager.core.energy_book import MAX_GAP_S, TOTALS, EnergyBook
from TWCManager.core.interfaces import MeterReading
from TWCManager.history import EnergyRecorder

T0 = 1_800_000_000.0


def reading(at_wall: float, grid_w: float, solar_w: float | None = None) -> MeterReading:
    house = None if solar_w is None else solar_w - grid_w
    return MeterReading(grid_w, solar_w, house, at_wall - T0, at_wall)


def test_the_split_of_a_minute():
    book, minute_kwh = EnergyBook(), lambda w: w * 60 / 3.6e6
    book.add(T0, 0, 0, 0)
    # 2 kW exported while the car takes 4 kW: 6 kW of surplus, all the car's 4 kW is sun.
    added = book.add(T0 + 60, 2000, 7000, 4000, "blue_peak", 0.1654)
    assert added["export_kwh"] == pytest.approx(minute_kwh(2000))
    assert added["car_sun_kwh"] == pytest.approx(minute_kwh(4000))
    assert added["car_grid_kwh"] == 0 and added["import_kwh"] == 0
    assert added["solar_kwh"] == pytest.approx(minute_kwh(7000))
    # 1 kW bought while the car takes 4 kW: 3 kW of sun reach it, 1 kW of grid.
    added = book.add(T0 + 120, -1000, 4000, 4000, "red_peak", 0.7295)
    assert added["car_sun_kwh"] == pytest.approx(minute_kwh(3000))
    assert added["car_grid_kwh"] == pytest.approx(minute_kwh(1000))
    assert added["import_red_peak_kwh"] == added["import_kwh"] == pytest.approx(minute_kwh(1000))
    assert book.snapshot()["import_cost_eur"] == pytest.approx(minute_kwh(1000) * 0.7295,
                                                               abs=1e-4)
    # A hole longer than MAX_GAP_S is not booked as minutes of steady power.
    assert book.add(T0 + 120 + MAX_GAP_S + 1, -5000, 0, 0) == {}


@given(st.lists(st.tuples(st.floats(0.1, 200), st.floats(-20000, 20000),
                          st.none() | st.floats(0, 20000), st.floats(-100, 20000)),
                max_size=40))
def test_totals_only_grow_and_the_car_adds_up(steps):
    book, at, before = EnergyBook(), T0, dict.fromkeys(TOTALS, 0.0)
    book.add(at, 0, 0, 0)
    for dt, grid_w, solar_w, car_w in steps:
        at += dt
        book.add(at, grid_w, solar_w, car_w)
        for name in TOTALS:
            assert book.totals[name] >= before[name]
        before = dict(book.totals)
    totals = book.totals
    assert totals["car_sun_kwh"] + totals["car_grid_kwh"] == pytest.approx(totals["car_kwh"])


def test_totals_days_and_minutes_survive_a_restart(tmp_path):
    path = tmp_path / "history.sqlite"
    recorder = EnergyRecorder(path, local_day=lambda t: "2027-01-15")
    recorder.start()
    for i in range(0, 121, 2):                       # two minutes of 2 kW export
        recorder.step(reading(T0 + i, 2000.0, 5000.0), 3000.0, ("blue_peak", 0.1654))
    recorder.stop()
    assert recorder.totals()["export_kwh"] == pytest.approx(2 * 120 / 3600, rel=1e-3)
    again = EnergyRecorder(path)
    again.start()
    assert again.totals()["export_kwh"] == recorder.totals()["export_kwh"]
    again.step(reading(T0 + 200, 2000.0), 0.0)
    again.step(reading(T0 + 260, 2000.0), 0.0)       # one more minute
    assert again.totals()["export_kwh"] > recorder.totals()["export_kwh"]
    assert again.day_totals()["2027-01-15"]["car_sun_kwh"] == pytest.approx(0.1, abs=1e-3)
    minutes = again.minutes(T0 - 60)
    assert [m["t"] for m in minutes][:3] == [int(T0 // 60) * 60, int(T0 // 60) * 60 + 60,
                                              int(T0 // 60) * 60 + 120]
    assert minutes[0]["car_w"] == 3000.0 and minutes[0]["house_w"] == 0.0
    again.stop()


def test_a_database_that_cannot_be_written_loses_nothing(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="TWCManager.history")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    recorder = EnergyRecorder(blocker / "history.sqlite", local_day=lambda t: "2027-01-15")
    recorder.start()
    for i in range(0, 61, 2):
        recorder.step(reading(T0 + i, -1000.0), 0.0)
    recorder.flush()
    recorder.flush()
    assert "not-a-dir" in recorder.error
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    blocker.unlink()                                  # fixed: the next flush writes it all
    recorder.flush()
    assert recorder.error is None
    with sqlite3.connect(blocker / "history.sqlite") as db:
        (kwh,) = db.execute("SELECT value FROM days WHERE name = 'import_kwh'").fetchone()
    assert kwh == pytest.approx(1000 * 60 / 3.6e6, rel=1e-3)
    recorder.stop()


def test_the_daemon_keeps_its_totals_across_a_restart(tmp_path):
    import json

    from TWCManager.ipc_client import IpcClient

    from .test_daemon_pty import Rig, charging_unit
    from .util import wait_until

    from TWCManager.core.settings import Settings

    # Green tracking all day: the meter is read every 0.2 s (not once a minute, as when idle).
    overrides = {"green.command": "echo 1500", "green.stream": False, "green.interval_s": 0.2,
                 "green.start_hour": 0, "green.end_hour": 24}
    green = Settings(non_scheduled_amps=-1)

    def exported(rig) -> float:
        status = json.loads(IpcClient(rig.ipc_path).query("getStatusJson", timeout_s=5,
                                                          packets=True))
        return status["energy"]["export_kwh"]
    with Rig(tmp_path, [charging_unit()], green, **overrides) as rig:
        assert wait_until(lambda: exported(rig) > 0.0005, timeout_s=15)
        first = exported(rig)
    with Rig(tmp_path, [charging_unit()], green, **overrides) as rig:
        assert exported(rig) >= first                 # loaded back, never lower
        assert wait_until(lambda: exported(rig) > first, timeout_s=15)


def test_charging_sessions_are_kept_with_their_energy(tmp_path):
    from TWCManager.core.sessions import SessionMeter
    from TWCManager.twc.messages import STATE_CHARGING, STATE_READY
    from TWCManager.twc.slave import SlaveTWC

    unit = SlaveTWC(0x032E, 0x77, 2, 32.0, registered_at=0.0)
    meter = SessionMeter()
    unit.update_from_heartbeat(STATE_CHARGING, 16.0, 16.0, 0.0)
    for t in range(0, 1801):                     # half an hour at 16 A x 690 W
        meter.step(float(t), [unit], 690.0, T0 + t)
    unit.update_from_heartbeat(STATE_READY, 16.0, 0.0, 1801.0)
    meter.step(1801.0, [unit], 690.0, T0 + 1801)
    assert len(meter.ended) == 1
    charger, start, end, kwh = meter.ended[0]
    assert (charger, start, end) == ("032E", T0, T0 + 1801) and kwh == pytest.approx(5.52, 0.01)
    recorder = EnergyRecorder(tmp_path / "history.sqlite")
    recorder.start()
    recorder.add_sessions(meter.ended)
    assert recorder.sessions(T0)[0]["kwh"] == kwh          # before the write, too
    recorder.stop()
    again = EnergyRecorder(tmp_path / "history.sqlite")
    assert again.sessions(T0) == [{"charger": "032E", "start": T0, "end": T0 + 1801, "kwh": kwh}]
