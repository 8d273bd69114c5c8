"""Green tracking end to end: the inverter simulator (a real Modbus TCP server on
127.0.0.1), the real `solaredge` command run by the daemon, the daemon and a simulated
TWC on a pty. Delays are shortened through the config; holds through injection."""
from __future__ import annotations

import json
import sys

import pytest

from TWCManager.core.settings import Settings
from TWCManager.sim.inverter import InverterSimulator

from .test_daemon_pty import Rig, charging_unit
from .util import wait_until

WPA = 690  # 230 V × 3 phases


def green_overrides(command: str, **extra) -> dict:
    return {"green.command": command, "green.interval_s": 1.0, "green.start_hour": 0,
            "green.end_hour": 24, "green.start_delay_s": 2.0, "green.stop_delay_s": 4.0,
            "green.ride_through_wh": 1000.0, "green.stale_after_s": 3.0, "twc.wiring_max_amps_all_twcs": 32,
            "twc.wiring_max_amps_per_twc": 32, **extra}


@pytest.fixture
def inverter():
    sim = InverterSimulator(solar_w=0, grid_w=0)
    sim.start()
    yield sim
    sim.stop()


def solaredge(port: int) -> str:
    return f"{sys.executable} -m TWCManager.solaredge --host 127.0.0.1 --port {port} --json"


def green_status(rig) -> dict:
    return rig.daemon.query(lambda home, now: rig.daemon.green_status(now))


class CarOnMeter:
    """Keeps the meter honest: the export falls by what the simulated car draws."""

    def __init__(self, inverter, unit, surplus_w):
        self.inverter, self.unit, self.surplus_w = inverter, unit, surplus_w

    def __call__(self):
        car_w = self.unit.actual_amps() * WPA if self.unit.actual_amps() > 1 else 0
        self.inverter.set_power(solar_w=self.surplus_w + 500, grid_w=self.surplus_w - car_w)
        return True


def test_export_starts_import_stops_and_a_dead_inverter_means_0_a(tmp_path, inverter):
    unit = charging_unit()
    with Rig(tmp_path, [unit], settings=Settings(non_scheduled_amps=-1),
             **green_overrides(solaredge(inverter.port))) as rig:
        # Half an amp over each target: offers are whole amps, rounded down.
        meter = CarOnMeter(inverter, unit, surplus_w=10.5 * WPA)
        # export rises → the offer rises (after the start delay and the start hold)
        assert wait_until(lambda: meter() and unit.limit_amps == 10 and unit.actual_amps() > 8,
                          timeout_s=30), green_status(rig)
        status = green_status(rig)
        assert status["state"] == "ok" and status["solar_w"] == round(10.5 * WPA + 500)
        assert status["car_w"] > 0 and status["grid_w"] is not None
        # more sun → more amps
        meter.surplus_w = 14.5 * WPA
        assert wait_until(lambda: meter() and unit.limit_amps == 14, timeout_s=20)
        # import (the sun covers 5 of the 6 A minimum) → the offer falls to the minimum,
        # then stops after the stop delay
        meter.surplus_w = 5 * WPA
        assert wait_until(lambda: meter() and unit.limit_amps == 6, timeout_s=20)
        assert wait_until(lambda: meter() and unit.limit_amps == 0, timeout_s=30)
        assert wait_until(lambda: "below" in rig.daemon.query(lambda home, now: home.site.pool.reason),
                          timeout_s=5)
        # sun again, then the inverter dies: 0 A once the reading is stale
        meter.surplus_w = 12 * WPA
        assert wait_until(lambda: meter() and unit.limit_amps >= 6, timeout_s=30)
        inverter.stop()
        assert wait_until(lambda: green_status(rig)["state"] == "stale", timeout_s=15)
        assert wait_until(lambda: "no valid energy reading" in rig.daemon.query(
            lambda home, now: home.site.pool.reason), timeout_s=5)
        assert wait_until(lambda: unit.limit_amps == 0, timeout_s=10)
        assert green_status(rig)["last_error"]


def test_readings_return_and_tracking_resumes(tmp_path):
    value = tmp_path / "grid_w"
    value.write_text(str(8 * WPA))
    command = f"{sys.executable} -c \"print(open('{value}').read())\""
    unit = charging_unit()
    with Rig(tmp_path, [unit], settings=Settings(non_scheduled_amps=-1),
             **green_overrides(command)) as rig:
        assert wait_until(lambda: green_status(rig)["state"] == "ok", timeout_s=10)
        value.write_text("garbage")
        assert wait_until(lambda: green_status(rig)["state"] == "stale", timeout_s=10)
        assert rig.daemon.query(lambda home, now: home.site.pool.amps) == 0
        value.write_text(str(8 * WPA))
        assert wait_until(lambda: green_status(rig)["state"] == "ok", timeout_s=10)
        assert wait_until(lambda: rig.daemon.query(lambda home, now: home.site.pool.amps) > 6, timeout_s=10)


def test_charge_now_ignores_a_dead_energy_source(tmp_path):
    unit = charging_unit()
    with Rig(tmp_path, [unit], settings=Settings(non_scheduled_amps=-1),
             **green_overrides("false")) as rig:
        def charge_now(home, now):
            home.settings.charge_now_amps = 32.0
            home.settings.charge_now_until_at_wall = 4e9
            home.master.settings_changed(now)

        rig.daemon.call(charge_now)
        assert wait_until(lambda: unit.limit_amps == 32, timeout_s=20)
        assert green_status(rig)["state"] == "stale"


def test_a_hung_command_never_delays_heartbeats(tmp_path):
    unit = charging_unit()
    hung = f"{sys.executable} -c \"import time; time.sleep(30)\""
    with Rig(tmp_path, [unit], **green_overrides(hung, **{"green.interval_s": 30,
                                                          "green.stale_after_s": 60})) as rig:
        assert wait_until(lambda: unit.heartbeats_received >= 2, timeout_s=10)
        start = len(unit.commands)
        assert wait_until(lambda: len(unit.commands) >= start + 8, timeout_s=15)
        beats = [t for t, _ in unit.commands[start:]]
        gaps = [b - a for a, b in zip(beats, beats[1:])]
        assert all(0.9 <= gap <= 1.1 for gap in gaps), gaps
        assert rig.daemon.meter.last_attempt_at is not None


def test_green_status_over_ipc(tmp_path, inverter):
    import struct
    import time

    inverter.set_power(solar_w=5000, grid_w=2000)
    unit = charging_unit(mode="unplugged")
    with Rig(tmp_path, [unit], settings=Settings(non_scheduled_amps=-1),
             **green_overrides(solaredge(inverter.port))) as rig:
        assert wait_until(lambda: green_status(rig)["state"] == "ok", timeout_s=10)
        queue = rig.daemon.ipc.queue
        queue.send(struct.pack("=LH", int(time.time()), 77) + b"getGreenStatus", type=2)
        deadline = time.monotonic() + 5
        bodies = []
        while time.monotonic() < deadline:
            try:
                body, _ = queue.receive(type=1, block=False)
            except Exception:
                time.sleep(0.01)
                continue
            bodies.append(body)
            count = bodies[0][6]
            if len(bodies) == count + 1:
                break
        data = json.loads(b"".join(b[6:] for b in bodies[1:]))
        assert data["state"] == "ok"
        assert (data["grid_w"], data["solar_w"], data["house_w"]) == (2000, 5000, 3000)
        assert data["last_reading_at"] > time.time() - 10
