"""The car's green flavours of decisions §6.2 on a fake clock: `solar` buys no grid power (a
shortfall stops at once), `cheapest` weighs a grid kWh now against the sun kWh it keeps (it
charges at the minimum from part sun at blue prices, stops at once below the share that pays at
red ones, and rounds a fraction of an amp up only when worth it); with no tariff or no mode,
round 1's rules. Then the safety invariant with the real tracker, whatever the mode and tariff;
and the replay's hello `tariff` / `mode`."""
from __future__ import annotations

import io
import json
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from TWCManager.core import policy
from TWCManager.core.green import GreenParams, GreenService, GreenTracker
from TWCManager.core.interfaces import FixedTariff, MeterReading, Pricing, SiteReadings
from TWCManager.core.settings import Settings
from TWCManager.core.site import Site, SiteDriver
from TWCManager.sim.twc import Car, SimulatedTWC
from TWCManager.twc.master import Master
from TWCManager.twc.messages import MasterHeartbeat, parse_message
from TWCManager.twc.protocol import FrameDecoder

from .fakes import FakeClock
from .harness import Harness
from .test_safety import check

WPA = 690.0
BLUE = Pricing(0.1654, 0.1356, 0.04)
RED = Pricing(0.7295, 0.1615, 0.04)
FAST = GreenParams(start_delay_s=10, stop_delay_s=180, ride_through_wh=20)


def reading(grid_w, at):
    return MeterReading(grid_w, None, None, at, 1_800_000_000 + at)


def started(mode, pricing, min_amps=6.0, budget=0.0):
    """A tracker charging at 10 A from 10 A of sun (on, past the start delay)."""
    tracker = GreenTracker(GreenParams(**{**FAST.__dict__, "mode": mode,
                                          "restart_budget_share": budget}))
    for t in (0, 5, 11):
        tracker.update(t, reading(10 * WPA, t), 0.0, min_amps, WPA, pricing)
    assert tracker.on
    return tracker


def test_the_share_that_pays():
    assert BLUE.ride_share() == pytest.approx(0.0298 / 0.1254)       # ~24 %
    assert RED.ride_share() == pytest.approx(0.5680 / 0.6895)        # ~82 %
    assert Pricing(0.10, 0.12, 0.04).ride_share() == 0.0              # the grid now is cheaper
    assert Pricing(0.10, 0.05, 0.20).ride_share() == 1.0              # export beats any grid


def test_solar_stops_at_once_where_round_one_rides_through():
    for mode, on in (("solar", False), ("", True)):
        tracker = started(mode, BLUE)
        # A shallow cloud: 5 A of sun for a 6 A minimum while the car draws 10 A.
        decision = tracker.update(13, reading(-5 * WPA, 13), 10.0, 6.0, WPA, BLUE)
        assert tracker.on is on, (mode, decision)
    assert "solar mode buys no grid power" in decision.reason if not on else True


def test_cheapest_at_blue_prices_charges_from_part_sun():
    tracker = GreenTracker(GreenParams(**{**FAST.__dict__, "mode": "cheapest",
                                          "restart_budget_share": 0.0}))
    # 2 A of sun: 33 % of 6 A, above the ~24 % that pays at blue prices: start after the delay.
    assert tracker.update(0, reading(2 * WPA, 0), 0.0, 6.0, WPA, BLUE).amps == 0.0
    decision = tracker.update(11, reading(2 * WPA, 11), 0.0, 6.0, WPA, BLUE)
    assert tracker.on and decision.amps == 6.0 and "charging at 6 A" in decision.reason
    # 1 A of sun (17 %): not worth it, stop at once.
    decision = tracker.update(13, reading(-5 * WPA, 13), 6.0, 6.0, WPA, BLUE)
    assert not tracker.on and "below the 24% that pays" in decision.reason
    # Round 1 would never start on 2 A.
    legacy = GreenTracker(FAST)
    for t in (0, 11, 30):
        assert legacy.update(t, reading(2 * WPA, t), 0.0, 6.0, WPA, BLUE).amps == 2.0
    assert not legacy.on


def test_cheapest_at_red_prices_stops_where_blue_rides_on():
    for pricing, on in ((RED, False), (BLUE, True)):
        tracker = started("cheapest", pricing)
        # The sun covers 4.5 A of 6 (75 %): enough at blue prices, not at red ones (82 %).
        decision = tracker.update(13, reading(-5.5 * WPA, 13), 10.0, 6.0, WPA, pricing)
        assert tracker.on is on, decision
    # Without prices, "cheapest" falls back to round 1's rules (rides through).
    tracker = started("cheapest", None)
    assert tracker.update(13, reading(-5.5 * WPA, 13), 10.0, 6.0, WPA, None).amps == 6.0


def test_a_cloud_below_the_share_may_cost_a_share_of_a_restart():
    """Riding on at the minimum below the share that pays loses money each second; the budget
    is `restart_budget_share` of the sun a restart loses (60 s of 6 A at N - E)."""
    restart_eur = 6 * WPA * 60 / 3.6e6 * (RED.night_eur_kwh - RED.export_eur_kwh)
    loss_eur_per_s = 6 * WPA / 3.6e6 * (RED.day_eur_kwh - RED.night_eur_kwh)   # no sun
    for budget in (0.5, 1.0):
        tracker = started("cheapest", RED, budget=budget)
        t, riding = 11, 0
        while True:
            t += 1
            decision = tracker.update(t, reading(-10 * WPA, t), 10.0, 6.0, WPA, RED)
            if not tracker.on:
                break
            assert decision.amps == 6.0 and "riding through" in decision.reason
            riding += 1
        expected_s = budget * restart_eur / loss_eur_per_s
        assert abs(riding - expected_s) <= 1.5, (budget, riding, expected_s)
        assert "the budget of what a restart would lose" in decision.reason


def test_the_car_draw_gap_is_measured_and_used_for_rounding():
    service = GreenService(GreenParams(mode="cheapest", start_delay_s=0))
    for t in range(0, 40):      # the car draws 0.4 A below a 10 A limit, once settled
        service.decide(float(t), 1.8e9 + t, SiteReadings(meter=reading(0.0, float(t))), 9.6,
                       6.0, WPA, float(t), BLUE, car_limit_amps=10.0)
    assert 0.2 < service.tracker.draw_gap_a <= 0.4
    ramping = GreenService(GreenParams(mode="cheapest"))
    for t in range(0, 40):      # the limit changes every 5 s: never settled, nothing learnt
        ramping.decide(float(t), 1.8e9 + t, SiteReadings(meter=reading(0.0, float(t))), 6.0,
                       6.0, WPA, float(t), BLUE, car_limit_amps=10.0 + t // 5)
    assert ramping.tracker.draw_gap_a == 0.0
    # 7.65 A of sun: with a 0.4 A gap, an 8 A offer draws 7.6 A, all sun: round up even at red.
    tracker = started("cheapest", RED)
    tracker.draw_gap_a = 0.4
    assert tracker.update(13, reading(-2.35 * WPA, 13), 10.0, 6.0, WPA, RED).amps == 8.0
    tracker.draw_gap_a = 0.0
    assert tracker.update(14, reading(-2.35 * WPA, 14), 10.0, 6.0, WPA, RED).amps == \
        pytest.approx(7.65)


@pytest.mark.parametrize("pricing, surplus_amps, expected", [
    (BLUE, 7.30, 8.0),     # 30 % of the 8th amp from the sun > 24 %: round up
    (BLUE, 7.20, 7.2),     # 20 %: down (the policy offers 7)
    (RED, 7.80, 7.8),      # 80 % < 82 %: down at red prices
    (RED, 7.90, 8.0),
])
def test_cheapest_rounds_a_fraction_up_only_when_it_pays(pricing, surplus_amps, expected):
    tracker = started("cheapest", pricing)
    decision = tracker.update(13, reading((surplus_amps - 10) * WPA, 13), 10.0, 6.0, WPA,
                              pricing)
    assert decision.amps == pytest.approx(expected)
    solar = started("solar", pricing)
    assert solar.update(13, reading((surplus_amps - 10) * WPA, 13), 10.0, 6.0, WPA,
                        pricing).amps == pytest.approx(surplus_amps)


# ------------------------------------------------------------------ safety, any mode and tariff

pricing_st = st.none() | st.builds(Pricing, st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))


@hsettings(max_examples=int(os.environ.get("TWC_SAFETY_EXAMPLES", "150")) // 3, deadline=None,
           suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["", "solar", "cheapest"]), pricing_st,
       st.lists(st.tuples(st.floats(0.5, 15), st.one_of(st.none(), st.floats(-20000, 60000))),
                min_size=1, max_size=30),
       st.integers(5, 40), st.integers(0, 2**32 - 1))
def test_offers_never_exceed_wiring_whatever_the_mode_and_tariff(mode, pricing, steps,
                                                                  wiring_amps, seed):
    clock = FakeClock()
    lims = policy.Limits(float(wiring_amps), float(wiring_amps), 6.0)
    site = Site(Settings(non_scheduled_amps=-1), lims,
                green_params=GreenParams(start_delay_s=2, stop_delay_s=5, mode=mode),
                holds=policy.Holds(start_stop_s=3, lowering_s=1, spike_s=1, stuck_s=2,
                                   idle_give_up_s=9),
                green_hours=(0, 24), tariff=FixedTariff(pricing) if pricing else None)
    meter = {"reading": None}
    driver = SiteDriver(site, clock.wall, lambda: SiteReadings(meter=meter["reading"]))
    master = Master(limits=lims, planner=driver, rng=random.Random(seed))
    sims = {0x0100 + i: SimulatedTWC(0x0100 + i, i, protocol=2, max_amps=32.0,
                                     car=Car(mode="charging", car_max_amps=32.0))
            for i in range(2)}
    h = Harness(master, list(sims.values()), clock, site=site)
    sent: dict[int, int] = {}
    seen = {"n": 0}
    original = h._from_master

    def watch(frames):
        for frame in frames:
            for raw in FrameDecoder().feed(frame):
                msg = parse_message(raw)
                if isinstance(msg, MasterHeartbeat) and msg.data[0] in (0x05, 0x08, 0x09):
                    sent[msg.receiver_id] = int.from_bytes(msg.data[1:3], "big") // 100
                    check(master, sent, sims, clock.mono)
                    seen["n"] += 1
            original([frame])

    h._from_master = watch
    h.start()
    # A sunny start, so every example has cars charging before its random readings.
    for _ in range(20):
        meter["reading"] = MeterReading(20000.0, None, None, clock.mono, clock.wall().timestamp())
        h.run_for(1.0)
    for dt, grid_w in steps:
        meter["reading"] = None if grid_w is None else MeterReading(
            grid_w, None, None, clock.mono, clock.wall().timestamp())
        h.run_for(dt)
    check(master, sent, sims, clock.mono)
    EXERCISED["limit_frames"] += seen["n"]
    EXERCISED["nonzero_offers"] += any(amps > 0 for amps in sent.values())


EXERCISED = {"limit_frames": 0, "nonzero_offers": 0}


def test_the_property_saw_real_offers():
    # Runs after the property in file order: it saw limit commands, some of them charging.
    assert EXERCISED["limit_frames"] > 50 and EXERCISED["nonzero_offers"] > 3, EXERCISED


# ------------------------------------------------------------------ the replay's hello

def run_replay(lines: list[dict]) -> tuple[int, list[dict], str]:
    from TWCManager.config import load_config
    from TWCManager.replay import serve

    out, err = io.StringIO(), io.StringIO()
    status = serve(load_config(None, {}), io.StringIO("\n".join(json.dumps(x) for x in lines)),
                   out, err)
    return status, [json.loads(x) for x in out.getvalue().splitlines()], err.getvalue()


def cloudy_morning(hello: dict) -> list[int]:
    """Offers, second by second, to a car that draws what it is offered (from 6 A), under 8 A
    of sun and then a cloud leaving 4.5 A (75 % of the 6 A minimum), through the replay's
    engine built from a hello as `serve` builds it."""
    from TWCManager.config import load_config
    from TWCManager.replay import Obs, ReplayEngine, parse_car, parse_mode, parse_tariff

    engine = ReplayEngine(load_config(None, {}), parse_car(hello.get("car")),
                          pricing=parse_tariff(hello.get("tariff")),
                          mode=parse_mode(hello.get("mode")))
    offers, offer = [], 0.0
    for t in range(36000, 36000 + 600):
        car_a = offer if offer >= 6 else 0.0
        sun_a = 8.0 if t < 36300 else 4.5
        offer = float(engine.step(Obs(t, None, (sun_a - car_a) * WPA, None, t, car_a,
                                      "charging" if car_a else "stopped", offer)))
        offers.append(offer)
    return offers


def test_replay_red_cheapest_stops_in_a_cloud_that_blue_rides_through():
    red = {"day_eur_kwh": 0.7295, "night_eur_kwh": 0.1615, "export_eur_kwh": 0.04}
    blue = {"day_eur_kwh": 0.1654, "night_eur_kwh": 0.1356, "export_eur_kwh": 0.04}
    at_red = cloudy_morning({"type": "hello", "tariff": red, "mode": "cheapest"})
    at_blue = cloudy_morning({"type": "hello", "tariff": blue, "mode": "cheapest"})
    legacy = cloudy_morning({"type": "hello"})
    assert max(at_red[:300]) >= 6 and max(at_blue[:300]) >= 6       # charging before
    assert at_red[-1] == 0                      # red: 75 % of the minimum does not pay
    assert at_blue[-1] == 6                     # blue: it does, for as long as it lasts
    assert legacy[-1] == 0                      # round 1: its 20 Wh budget runs out


def test_replay_hello_tariff_and_mode_drive_the_tracker():
    # The replay is lockstep with a car that draws nothing here; what matters is that the same
    # hello with a tariff and mode gets different decisions, as the daemon would.
    tariff = {"day_eur_kwh": 0.7295, "night_eur_kwh": 0.1615, "export_eur_kwh": 0.04,
              "colour": "RED"}
    status, replies, err = run_replay([{"type": "hello", "tariff": tariff, "mode": "cheapest"},
                                       {"type": "end"}])
    assert status == 0 and replies[0]["name"] == "twcmanager", err
    for bad, message in (({"tariff": {"day_eur_kwh": 0.2}}, "missing field 'night_eur_kwh'"),
                         ({"tariff": {**tariff, "colour": "PINK"}}, "tariff colour"),
                         ({"tariff": {**tariff, "day_eur_kwh": 99}}, "0..10 EUR/kWh"),
                         ({"mode": "cheap"}, "mode \"cheap\" is not one of solar, cheapest")):
        status, _replies, err = run_replay([{"type": "hello", **bad}])
        assert status == 2 and message in err, err
