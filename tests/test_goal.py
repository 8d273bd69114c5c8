""""N kWh by HH:MM" (TWCManager.core.goal): the sun first, then the cheapest 15-minute grid
slots before the deadline (the latest of equal price first, one block at the end without
prices), on both daylight-saving nights; the site charging in those slots and ending the goal
when met or missed; the IPC command, the settings file, and the web API on a real daemon."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from TWCManager.core import policy
from TWCManager.core.goal import GoalKeeper, goal_slots, merged, slots_until
from TWCManager.core.settings import Settings
from TWCManager.tariff.tempo import PARIS, TempoPrices, period

PRICES = TempoPrices()


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def tempo_price(when: datetime) -> float:
    return PRICES.price("BLUE", period(when, PRICES))


def test_slots_are_quarter_hours_and_real_length_on_dst_nights():
    slots = slots_until(paris(2026, 12, 3, 21, 7), paris(2026, 12, 3, 22, 0))
    assert [(s.strftime("%H:%M"), e.strftime("%H:%M")) for s, e in slots] == [
        ("21:07", "21:15"), ("21:15", "21:30"), ("21:30", "21:45"), ("21:45", "22:00")]
    for night, hours in ((paris(2026, 3, 28, 22, 0), 7), (paris(2026, 10, 24, 22, 0), 9)):
        slots = slots_until(night, night.replace(day=night.day + 1, hour=6))
        total_s = sum(e.timestamp() - s.timestamp() for s, e in slots)
        assert total_s == hours * 3600 and all(e.timestamp() - s.timestamp() == 900
                                               for s, e in slots)


def test_cheapest_slots_latest_first_and_the_sun_before_them():
    now = paris(2026, 12, 3, 14, 0)
    # 11 kW for 8 kWh: 45 min of grid; the cheapest are off-peak, the latest of them.
    slots, enough = goal_slots(now, paris(2026, 12, 4, 7, 0), 8.0, 11.0, tempo_price)
    assert enough and [s.start.strftime("%H:%M") for s in slots] == ["05:15", "05:30", "05:45"]
    assert merged(slots) == [{"start": "2026-12-04T05:15+01:00", "end": "2026-12-04T06:00+01:00",
                              "price_eur_kwh": PRICES.blue_offpeak_eur_kwh}]
    # Without prices: one block ending at the deadline.
    slots, _ = goal_slots(now, paris(2026, 12, 4, 7, 0), 8.0, 11.0, lambda when: None)
    assert [s.start.strftime("%H:%M") for s in slots] == ["06:15", "06:30", "06:45"]
    # Not enough time even at full current: every slot, and said so.
    slots, enough = goal_slots(now, paris(2026, 12, 3, 14, 30), 20.0, 11.0, tempo_price)
    assert not enough and len(slots) == 2
    assert goal_slots(now, paris(2026, 12, 4, 7, 0), 0.0, 11.0, tempo_price) == ([], True)


def test_the_keeper_counts_energy_charges_in_its_slots_and_ends_the_goal():
    settings = Settings()
    start = paris(2026, 12, 3, 4, 0)
    settings.charge_goal_kwh, settings.charge_goal_by_at_wall = 5.0, paris(
        2026, 12, 3, 6, 0).timestamp()
    keeper = GoalKeeper()
    # At 04:00, 5 kWh at 11 kW is 30 min: the last two off-peak quarter hours.
    decision, changes = keeper.step(settings, 0.0, start, 0.0, 16.0, 690.0, tempo_price)
    assert decision is None and changes == []
    assert [w["start"][11:16] for w in keeper.status(settings)["grid_windows"]] == ["05:30"]
    decision, _ = keeper.step(settings, 1.0, paris(2026, 12, 3, 5, 31), 0.0, 16.0, 690.0,
                              tempo_price)
    assert decision[0] == 16.0 and "charge goal: 5.0 kWh more by 06:00" in decision[1]
    # The car takes 11 kW: after enough steps the goal is met, and cleared (a change to save).
    now, changes = 1.0, []
    while not changes:
        now += 5.0
        _decision, changes = keeper.step(settings, now, paris(2026, 12, 3, 5, 32), 11040.0,
                                         16.0, 690.0, tempo_price)
    assert changes == ["charge goal reached: 5 kWh"] and settings.charge_goal_by_at_wall == 0
    assert 1600 <= now <= 1700                 # 5 kWh at 11.04 kW: ~1630 s
    # A missed deadline ends it too.
    settings.charge_goal_kwh, settings.charge_goal_by_at_wall = 5.0, start.timestamp()
    _decision, changes = keeper.step(settings, now + 1, start + timedelta(seconds=1), 0.0,
                                     16.0, 690.0, tempo_price)
    assert changes == ["charge goal missed: 0.0 of 5 kWh by 04:00"]


def test_the_site_charges_at_the_wiring_limit_in_a_goal_slot():
    from .fakes import FakeClock, make_home

    clock = FakeClock(paris(2026, 12, 3, 5, 20))
    settings = Settings(non_scheduled_amps=0)                 # "do not charge" otherwise
    home = make_home(clock, settings, policy.Limits(32, 32, 6))
    settings.charge_goal_kwh = 3.0
    settings.charge_goal_by_at_wall = paris(2026, 12, 3, 6, 0).timestamp()
    decision = home.site.step(clock.mono, clock.now(), _readings(), [])
    assert decision.pool.source == policy.NON_SCHEDULED       # 3 kWh at 22 kW: 05:45 only
    clock.advance(26 * 60)
    decision = home.site.step(clock.mono, clock.now(), _readings(), [])
    assert (decision.pool.source, decision.pool.amps) == (policy.GOAL, 32.0)


def _readings():
    from TWCManager.core.interfaces import SiteReadings

    return SiteReadings()


def test_ipc_and_the_settings_file(tmp_path):
    from TWCManager.ipc.commands import handle_request
    from TWCManager.ipc.wire import BadRequest
    from TWCManager.settings_file import load_settings, save_settings

    from .fakes import make_home
    from .test_ipc import Recorder

    home = make_home()
    rec = Recorder(home)
    handle_request("setChargeGoal=20,07:00", home, rec.ctx)
    s = home.settings
    by = datetime.fromtimestamp(s.charge_goal_by_at_wall).astimezone()
    assert s.charge_goal_kwh == 20 and (by.hour, by.minute) == (7, 0)
    assert 0 < s.charge_goal_by_at_wall - rec.ctx.now_wall_s <= 86400
    for bad in ("setChargeGoal=0,07:00", "setChargeGoal=abc,07:00", "setChargeGoal=5,25:00",
                "setChargeGoal=5", "setChargeGoal=500,07:00"):
        with pytest.raises(BadRequest):
            handle_request(bad, home, rec.ctx)
    path = tmp_path / "s.txt"
    save_settings(path, s)
    assert "chargeGoalKwh=20.0" in path.read_text()
    assert load_settings(path)[0].charge_goal_by_at_wall == s.charge_goal_by_at_wall
    handle_request("chargeGoalCancel", home, rec.ctx)
    save_settings(path, home.settings)
    assert "chargeGoal" not in path.read_text()          # no goal: the file as it was


def test_web_api_on_a_real_daemon(tmp_path):
    from .test_api_v1 import make_app
    from .test_daemon_pty import Rig, charging_unit
    from .util import wait_until

    with Rig(tmp_path, [charging_unit()]) as rig:
        client = make_app(rig.ipc_path).test_client()
        response = client.post("/api/v1/charge_goal", json={"kwh": 12, "by": "07:00"})
        assert response.status_code == 200, response.get_json()
        assert wait_until(lambda: (client.get("/api/getChargeGoal").get_json() or {})
                          .get("grid_windows"), timeout_s=10)
        goal = client.get("/api/getChargeGoal").get_json()
        assert goal["kwh"] == 12 and goal["enough"] and goal["need_kwh"] <= 12
        state = client.get("/api/v1/state").get_json()
        assert state["charge_goal_kwh"] == 12 and state["charge_goal_grid_start"]
        for body, message in (({"kwh": 0, "by": "07:00"}, "0 < kWh"),
                              ({"kwh": "x", "by": "07:00"}, "not a number"),
                              ({"kwh": 5, "by": "7h"}, "expected a time HH:MM")):
            bad = client.post("/api/v1/charge_goal", json=body)
            assert bad.status_code == 400 and message in bad.get_json()["error"]
        assert client.post("/api/v1/charge_goal/cancel").status_code == 200
        assert wait_until(lambda: client.get("/api/getChargeGoal").get_json() is None,
                          timeout_s=5)
        assert client.post("/api/v1/charge_goal/cancel", data="x",
                           content_type="text/plain").status_code == 400


def test_session_energy_counts_from_plug_in_and_ends_with_the_car():
    from TWCManager.core.sessions import SessionMeter
    from TWCManager.twc.messages import STATE_CHARGING, STATE_READY
    from TWCManager.twc.slave import SlaveTWC

    unit = SlaveTWC(0x032E, 0x77, 2, 32.0, registered_at=0.0)
    meter = SessionMeter()
    unit.update_from_heartbeat(STATE_READY, 0.0, 0.0, 0.0)
    meter.step(0.0, [unit], 690.0)
    assert meter.session_kwh(unit) is None                  # no car
    unit.update_from_heartbeat(STATE_CHARGING, 16.0, 16.0, 1.0)
    for t in range(1, 3602):                                # an hour at 16 A x 690 W
        meter.step(float(t), [unit], 690.0)
    assert meter.session_kwh(unit) == pytest.approx(11.04, abs=0.02)
    meter.step(3700.0, [unit], 690.0)                       # a stalled loop: at most 5 s
    assert meter.session_kwh(unit) == pytest.approx(11.04 + 16 * 690 * 5 / 3.6e6, abs=0.02)
    unit.update_from_heartbeat(STATE_READY, 16.0, 0.0, 3701.0)
    meter.step(3701.0, [unit], 690.0)
    assert meter.session_kwh(unit) is None                  # unplugged: the session ended
