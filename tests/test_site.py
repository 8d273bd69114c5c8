"""The site core as tables on a fake clock (evcc's TestPVHysteresis style): readings and a unit's
draw in, the pool with its source and reason out, step by step; the wall-clock rules; the offer
per unit; a tz-aware clock across both daylight-saving changes."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from TWCManager.core import policy
from TWCManager.core.green import GreenParams
from TWCManager.core.interfaces import MeterReading, NoTariff, SiteReadings
from TWCManager.core.settings import Settings
from TWCManager.core.site import Site, SiteDriver, watts_per_amp
from TWCManager.twc.slave import STATE_CHARGING, STATE_PLUGGED_NO_CHARGE, SlaveTWC

PARIS = ZoneInfo("Europe/Paris")
NOON = datetime(2026, 6, 21, 12, 0, tzinfo=PARIS)
WPA = 690.0
LIMITS = policy.Limits(32, 32, 6)


def make_site(settings=None, **params) -> Site:
    return Site(settings or Settings(non_scheduled_amps=-1), LIMITS,
                green_params=GreenParams(**params), holds=policy.Holds(), green_hours=(6, 20))


def unit(now: float, amps: float) -> SlaveTWC:
    slave = SlaveTWC(twcid=0x032E, sign=1, protocol=2, rated_amps=32.0, registered_at=0.0)
    slave.update_from_heartbeat(STATE_CHARGING if amps >= 1 else STATE_PLUGGED_NO_CHARGE,
                                max(amps, 6.0), amps, now)
    return slave


def run(site: Site, table) -> None:
    """Each row: (t_s, grid_w or None = no new reading, car_amps, pool_amps, reason part)."""
    reading = None
    for t, grid_w, car_amps, pool_amps, reason in table:
        if grid_w is not None:
            reading = MeterReading(grid_w, None, None, at=float(t), at_wall=NOON.timestamp() + t)
        decision = site.step(float(t), NOON + timedelta(seconds=t), SiteReadings(meter=reading),
                             [unit(float(t), car_amps)])
        assert decision.pool.source == policy.GREEN
        assert decision.pool.amps == pytest.approx(pool_amps), (t, decision.pool)
        assert reason in decision.pool.reason, (t, decision.pool.reason)


def test_start_hold_then_surplus_then_a_cloud_ridden_through_then_a_deep_cloud_stops():
    run(make_site(start_delay_s=60), [
        (0, 7 * WPA, 0, 0, "starting in 60 s"),
        (30, 7 * WPA, 0, 0, "starting in 30 s"),
        (60, 7 * WPA, 0, 7, "starting"),
        (62, 0, 7, 7, "surplus 7.0 A"),          # the car takes the surplus: export 0
        (70, -1 * WPA, 7, 6, "surplus 6.0 A"),    # a thin cloud: still at the minimum
        (80, -2 * WPA, 7, 6, "riding through"),   # short of the minimum: held at 6 A
        (85, -7 * WPA, 7, 0, "stopped (the sun covers 0% of the minimum)"),
        (90, 0, 0, 0, "is below 6 A"),
    ])


def test_a_shallow_cloud_costs_its_energy_budget_then_stops():
    # 1 A short of the 6 A minimum = 690 W from the grid: 20 Wh last 104 s.
    run(make_site(start_delay_s=0), [
        (0, 8 * WPA, 0, 8, "starting"),
        (1, -1 * WPA, 6, 6, "riding through at 6 A"),
        *[(t, -1 * WPA, 6, 6, "riding through") for t in range(5, 105, 5)],
        (106, -1 * WPA, 6, 5, "the cloud cost 20 Wh from the grid"),
    ])


def test_a_dead_meter_offers_nothing_once_stale_and_says_why():
    run(make_site(start_delay_s=0, stale_after_s=30), [
        (0, 8 * WPA, 0, 8, "starting"),
        (10, None, 8, 8, "surplus"),             # the reading is 10 s old: still valid
        (31, None, 8, 0, "no valid energy reading for 31 s"),
    ])


@pytest.mark.parametrize("settings, source, amps", [
    (Settings(non_scheduled_amps=-1, charge_now_amps=20, charge_now_until_at_wall=9e9),
     policy.CHARGE_NOW, 20),
    (Settings(non_scheduled_amps=-1, scheduled_amps=16, scheduled_start_min=11 * 60,
              scheduled_end_min=13 * 60), policy.SCHEDULED, 16),
    (Settings(non_scheduled_amps=10), policy.NON_SCHEDULED, 10),
    (Settings(non_scheduled_amps=0), policy.NON_SCHEDULED, 0),
])
def test_precedence_over_green_tracking(settings, source, amps):
    site = make_site(settings)
    meter = SiteReadings(meter=MeterReading(9 * WPA, None, None, 0.0, NOON.timestamp()))
    pool = site.step(0.0, NOON, meter, [unit(0.0, 0)]).pool
    assert (pool.source, pool.amps) == (source, amps)


def test_wall_clock_rules_are_returned_for_saving_and_the_driver_saves_them():
    settings = Settings(non_scheduled_amps=8, charge_now_amps=20,
                        charge_now_until_at_wall=NOON.timestamp() + 5, resume_green_min=12 * 60 + 1)
    site = make_site(settings)
    assert site.step(0.0, NOON, SiteReadings(), []).changes == ()
    saved = []
    driver = SiteDriver(site, lambda: NOON + timedelta(seconds=61), on_changes=saved.append)
    driver.plan(61.0, [])
    assert saved == ["charge now expired, resumed green tracking"]
    assert (settings.charge_now_amps, settings.non_scheduled_amps) == (0.0, -1)


def test_offer_per_unit_with_its_reason_and_the_wiring_clamp():
    site = make_site(Settings(non_scheduled_amps=40))
    car = unit(0.0, 0)
    site.step(70.0, NOON, SiteReadings(), [car])   # past the 60 s start hold
    offer = site.offer(car, [], 70.0)
    assert (offer.amps, offer.reason) == (32, "pool share")
    held = site.offer(car, [], 70.0, reserved_amps=30)   # 2 A left on the wiring
    assert (held.amps, held.reason) == (0, "below 6 A floor (capped by wiring (pool share))")


@pytest.mark.parametrize("local, green", [
    (datetime(2026, 3, 29, 1, 59, tzinfo=PARIS), False),   # before the spring change
    (datetime(2026, 3, 29, 3, 0, tzinfo=PARIS), False),    # 02:00 did not happen
    (datetime(2026, 3, 29, 6, 0, tzinfo=PARIS), True),     # summer time: 06:00 local
    (datetime(2026, 10, 25, 5, 59, tzinfo=PARIS), False),  # autumn change day
    (datetime(2026, 10, 25, 19, 59, tzinfo=PARIS), True),
    (datetime(2026, 10, 25, 20, 0, tzinfo=PARIS), False),
])
def test_green_hours_follow_local_time_across_daylight_saving(local, green):
    site = make_site(start_delay_s=0)
    at = local.timestamp()
    meter = SiteReadings(meter=MeterReading(9 * WPA, None, None, at, at))
    pool = site.step(at, local, meter, [unit(at, 0)]).pool
    assert (pool.amps > 0) == green, pool
    assert site.green_active(local) == green


def test_no_tariff_knows_no_price_and_changes_nothing():
    tariff = NoTariff()
    assert tariff.name == "none"
    assert tariff.import_eur_kwh(NOON) is None and tariff.export_eur_kwh(NOON) is None
    assert isinstance(make_site().tariff, NoTariff)


def test_watts_per_amp_from_the_units_phase_volts():
    one, three = unit(0, 0), unit(0, 0)
    one.volts, three.volts = (240, 0, 0), (231, 229, 230)
    assert watts_per_amp([three]) == 690
    assert watts_per_amp([one, three]) == (240 + 690) / 2
    assert watts_per_amp([unit(0, 0)]) is None   # nothing reported: the config's volts × phases


def test_hold_reasons_count_down():
    """The page's "why" (issue 14 point 3): the Gen2 holds say how long they have left."""
    from TWCManager.core import policy
    from TWCManager.twc.slave import SlaveTWC

    limits, holds = policy.Limits(32, 32, 6), policy.Holds()
    unit = SlaveTWC(0x032E, 0x77, 2, 32.0, registered_at=0.0)
    unit.update_from_heartbeat(3, 0.0, 0.0, 0.0)        # registered (offer 0) at 0 s
    offer = policy.offer_for(unit, [], 16.0, limits, holds, 25.0)
    assert offer.amps == 0 and offer.reason.startswith("start held: 35 s left")
    assert policy.offer_for(unit, [], 16.0, limits, holds, 50.0).reason.startswith(
        "start held: 10 s left")
