"""The plan for the battery and the car on Tempo (TWCManager.plan): pure rules with an injected
Paris clock, hypothesis invariants, the `python -m TWCManager.plan` command, and the runner
applying the plan to the PI30 simulator (written only when it differs, read back, not asked
again while refused)."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from TWCManager.plan import whole_plan
from TWCManager.plan.battery import BatterySpec, fallback_problem, next_peak_day, plan_battery
from TWCManager.plan.car import car_windows
from TWCManager.tariff.tempo import BLUE, OFFPEAK, PARIS, PEAK, RED, WHITE, TempoPrices, period

PRICES = TempoPrices()
SPEC = BatterySpec(capacity_kwh=5.0, min_soc_pct=20.0, peak_load_kwh=3.0)
D = date(2026, 12, 3)        # a Thursday


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def test_red_peak_is_sbu_and_the_grid_never_charges_at_peak():
    plan = plan_battery(paris(2026, 12, 3, 10, 0), {D: RED}, PRICES, SPEC, 80.0, None)
    assert (plan.output_priority, plan.charger_priority) == ("sbu", "solar-only")
    assert "red peak" in plan.output_reason
    blue = plan_battery(paris(2026, 12, 3, 10, 0), {D: BLUE, D + timedelta(days=1): BLUE},
                        PRICES, SPEC, 80.0, None)
    assert (blue.output_priority, blue.charger_priority) == ("sbu", "solar-only")
    assert "gives back the sun it stored" in blue.output_reason
    keep = plan_battery(paris(2026, 12, 3, 10, 0), {D: BLUE}, PRICES,
                        BatterySpec(normal_output_priority="utility"), 80.0, None)
    assert keep.output_priority == "utility" and "kept for a red day" in keep.output_reason
    white = plan_battery(paris(2026, 12, 3, 10, 0), {D: WHITE}, PRICES,
                         BatterySpec(sbu_on_white=True), 80.0, None)
    assert white.output_priority == "sbu"


def test_the_night_before_a_red_day_charges_to_the_target():
    night = paris(2026, 12, 3, 23, 0)
    colours = {D: BLUE, D + timedelta(days=1): RED}
    plan = plan_battery(night, colours, PRICES, SPEC, 30.0, None)
    # 3 kWh of peak load, no forecast: 60 % of a 5 kWh battery above the 20 % reserve.
    assert plan.target_soc_pct == 80.0 and plan.next_peak_day == D + timedelta(days=1)
    assert plan.charger_priority == "solar-utility" and "below the 80 % target" in \
        plan.charger_reason
    assert plan.output_priority == "utility"
    sunny = plan_battery(night, colours, PRICES, SPEC, 30.0, 2.5)   # 2 kWh reach the load
    assert sunny.target_soc_pct == pytest.approx(40.0)
    full = plan_battery(night, colours, PRICES, SPEC, 85.0, None)
    assert full.charger_priority == "solar-only"
    blind = plan_battery(night, colours, PRICES, SPEC, None, None)
    assert blind.charger_priority == "solar-only" and "unknown" in blind.charger_reason


def test_an_unknown_tomorrow_is_insured_as_red_and_said():
    plan = plan_battery(paris(2026, 12, 3, 22, 30), {D: BLUE}, PRICES, SPEC, 30.0, None)
    assert plan.next_peak_colour == RED and not plan.next_peak_colour_known
    assert "2026-12-04: unknown — assuming red" in plan.assumptions
    assert plan.charger_priority == "solar-utility"
    # A Saturday cannot be red: no night charge for it.
    friday_night = paris(2026, 12, 4, 23, 0)
    saturday = plan_battery(friday_night, {}, PRICES, SPEC, 30.0, None)
    assert saturday.next_peak_colour == WHITE and saturday.charger_priority == "solar-only"


def test_before_six_the_night_belongs_to_the_evening():
    # 03:00 on the 4th is the night of the 3rd: its next peak is the 4th's.
    assert next_peak_day(paris(2026, 12, 4, 3, 0), PRICES) == D + timedelta(days=1)
    assert next_peak_day(paris(2026, 12, 4, 6, 0), PRICES) == D + timedelta(days=2)
    shifted = TempoPrices(offpeak_end_min=7 * 60)          # off-peak until 07:00
    assert next_peak_day(paris(2026, 12, 4, 6, 30), shifted) == D + timedelta(days=1)


colours_st = st.dictionaries(st.dates(date(2026, 11, 25), date(2026, 12, 10)),
                             st.sampled_from((BLUE, WHITE, RED)), max_size=16)


@given(st.datetimes(min_value=datetime(2026, 11, 26), max_value=datetime(2026, 12, 8),
                    timezones=st.just(timezone.utc)),
       colours_st, st.none() | st.floats(0, 100), st.none() | st.floats(0, 40),
       st.booleans())
def test_invariants(now, colours, soc, forecast, on_white):
    spec = BatterySpec(sbu_on_white=on_white)
    plan = plan_battery(now, colours, PRICES, spec, soc, forecast)
    assert spec.min_soc_pct <= plan.target_soc_pct <= 100
    if period(now, PRICES) == PEAK:
        assert plan.charger_priority == "solar-only"          # never grid-charged at peak
    else:
        assert plan.output_priority == "utility"                # the battery waits
    if plan.charger_priority == "solar-utility":
        assert soc is not None and soc < plan.target_soc_pct
    windows = car_windows(now, colours, PRICES, "solar")
    assert windows[0]["start"] == now.isoformat(timespec="minutes")
    for a, b in zip(windows, windows[1:]):
        assert a["end"] == b["start"]
    for w in windows:
        assert (w["car_uses"] == "grid") == (w["period"] == OFFPEAK)
        assert w["price_eur_kwh"] == PRICES.price(w["colour"], w["period"])


def test_fallback_is_detected_and_told_apart_from_the_reserve():
    status = {"output_priority": "sbu", "mode": "L", "battery_soc_pct": 70,
              "battery_v": 52.4, "battery_recharge_v": 46.0}
    assert "fell back to the grid although" in fallback_problem("sbu", status, SPEC)
    low = {**status, "battery_soc_pct": 19, "battery_v": 45.5}
    assert "back-to-grid point" in fallback_problem("sbu", low, SPEC)
    assert fallback_problem("sbu", {**status, "mode": "B"}, SPEC) is None
    assert fallback_problem("utility", status, SPEC) is None


def test_the_plan_command(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'[tempo]\ncache_file = "{tmp_path / "tempo.json"}"\n'
                      "[battery]\ncapacity_kwh = 5\npeak_load_kwh = 3\n")
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "TWCManager.plan", "--config", str(config), *args],
        capture_output=True, text=True, timeout=30)
    proc = run("--at", "2026-12-03T23:00", "--colour-today", "blue", "--colour-tomorrow", "red",
               "--soc", "30", "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["battery"]["charger_priority"] == "solar-utility"
    assert plan["battery"]["target_soc_pct"] == 80.0 and plan["period"] == "offpeak"
    assert plan["car"][0]["car_uses"] == "grid" and plan["car"][0]["price_eur_kwh"] == 0.1356
    text = run("--at", "2026-12-04T10:00+01:00", "--colour-today", "RED", "--soc", "90")
    assert "Inverter output priority:  sbu" in text.stdout, text.stdout
    unknown = run("--at", "2026-12-03T23:00", "--colour-tomorrow", "unknown", "--json")
    assert "2026-12-04: unknown — assuming red" in json.loads(unknown.stdout)["battery"][
        "assumptions"]
    bad = run("--at", "tomorrow")
    assert bad.returncode == 2 and "not an ISO time" in bad.stderr
    assert run("--at", "2026-12-03T23:00", "--colour-today", "PINK").returncode == 2


def test_whole_plan_matches_its_parts():
    now = paris(2026, 12, 3, 23, 0)
    colours = {D: BLUE, D + timedelta(days=1): RED}
    plan = whole_plan(now, colours, PRICES, SPEC, soc_pct=30.0, forecast_kwh=None,
                      green_mode="solar")
    assert plan["battery"] == plan_battery(now, colours, PRICES, SPEC, 30.0, None).as_dict()
    assert plan["car"] == car_windows(now, colours, PRICES, "solar")
    assert whole_plan(now, colours, PRICES, SPEC, soc_pct=None, forecast_kwh=None,
                      green_mode="solar", with_battery=False)["battery"] is None


# ------------------------------------------------------------------ the runner on the simulator

def test_the_runner_applies_the_plan_to_the_inverter(pi30_sim, caplog):
    from TWCManager.pi30.link import Pi30Link
    from TWCManager.pi30.source import Pi30Source
    from TWCManager.plan.runner import PlanRunner
    from TWCManager.tariff.calendar import TempoCalendar
    from TWCManager.tariff.service import TempoService

    from .fakes import FakeClock
    from .util import wait_until

    caplog.set_level(logging.INFO)
    sim, port = pi30_sim
    sim.model.output_priority = 0                   # utility
    clock = FakeClock(paris(2026, 12, 3, 10, 0))
    tempo = TempoService(TempoCalendar(), PRICES, clock)
    tempo.calendar.learn(D, RED, "rte", clock.now())
    # One fake monotonic clock for the poller and the runner: a reading is fresh only once the
    # poller has read the inverter after the clock moved.
    source = Pi30Source(Pi30Link(port, timeout_s=1.0), 0.3, clock=clock.monotonic)
    source.start()

    def step_after(seconds: float) -> float:
        clock.advance(seconds)
        assert wait_until(lambda: source.status(clock.monotonic())["state"] == "ok",
                          timeout_s=10)
        runner.step(clock.monotonic())
        return clock.monotonic()

    def status() -> dict:
        return source.status(clock.monotonic())

    def writes() -> list[str]:
        return [r for r in sim.requests if r.startswith(("POP", "PCP"))]
    try:
        runner = PlanRunner(tempo, SPEC, "solar", source, automate=True, now=clock.now,
                            interval_s=1.0, retry_s=600.0)
        step_after(0)
        assert wait_until(lambda: sim.model.output_priority == 2, timeout_s=10)   # SBU
        assert sim.model.charger_priority == 3                                    # solar-only
        assert wait_until(lambda: status()["changes"][-1]["state"] == "done", timeout_s=10)
        assert status()["changes"][-1]["reason"].startswith("plan: red peak")
        assert wait_until(lambda: status()["output_priority"] == "sbu", timeout_s=10)
        step_after(2)                                  # already in force: nothing asked
        step_after(2)
        assert writes() == ["POP02"]

        sim.nak_setters = True                         # the evening: it refuses
        clock.wall_time = paris(2026, 12, 3, 23, 0)
        tempo.calendar.learn(D + timedelta(days=1), BLUE, "rte", clock.now())
        step_after(10)                                 # output back to utility: refused
        assert wait_until(lambda: status()["changes"][-1]["state"] == "failed", timeout_s=10)
        asked = len(status()["changes"])
        step_after(20)                                 # not asked again within retry_s
        assert len(status()["changes"]) == asked and writes() == ["POP02", "POP00"]   # once
        sim.nak_setters = False
        step_after(700)                                # after retry_s: asked again, done
        assert wait_until(lambda: sim.model.output_priority == 0, timeout_s=10)
        assert runner.status()["battery"]["output_reason"].startswith("off-peak: the grid is cheap")
        assert any("Plan: output-priority sbu -> utility" in r.getMessage()
                   for r in caplog.records)
    finally:
        source.stop()


def test_the_runner_replans_at_once_when_a_colour_changes():
    from TWCManager.plan.runner import PlanRunner
    from TWCManager.tariff.calendar import TempoCalendar
    from TWCManager.tariff.service import TempoService

    from .fakes import FakeClock

    clock = FakeClock(paris(2026, 12, 3, 23, 0))
    tempo = TempoService(TempoCalendar(), PRICES, clock)
    runner = PlanRunner(tempo, SPEC, "solar", now=clock.now, interval_s=30.0)
    runner.step(0.0)
    assert runner.status()["car"][-1]["colour_known"] is False
    runner.step(1.0)                                   # within the interval, nothing changed
    tempo.calendar.override(D + timedelta(days=1), BLUE, clock.now())
    runner.step(2.0)                                   # within the interval, but re-planned
    assert runner.status()["car"][-1]["colour"] == BLUE
    assert runner.status()["car"][-1]["colour_known"] is True
