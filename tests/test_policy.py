"""Policy tables on a fake clock: original-program.md §6.2–6.6 and the scenarios of
twc-protocol.md §11.3, adjusted where decisions.md §4 fixes a bug (said in each test)."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from TWCManager.core import policy
from TWCManager.core.policy import Holds, Limits, choose_pool, offer_for
from TWCManager.core.settings import Settings
from TWCManager.twc.slave import SlaveTWC

from .fakes import FakeClock

# 2026-11-22 is a Sunday.
SUNDAY = datetime(2026, 11, 22)
MONDAY = datetime(2026, 11, 23)
ORIGINAL = Limits(wiring_max_amps_all_twcs=40, wiring_max_amps_per_twc=40, min_amps_per_twc=12)
HOLDS = Holds()


def make_slave(clock: FakeClock, twcid=0x032E, protocol=1, rated=80.0) -> SlaveTWC:
    slave = SlaveTWC(twcid=twcid, sign=1, protocol=protocol, rated_amps=rated,
                     registered_at=clock.mono)
    slave.update_from_heartbeat(0x00, 0.0, 0.0, clock.mono)  # usual first report: 0 A limit
    return slave


def beat(slave, others, pool, clock, *, actual=None, state=None, limits=ORIGINAL,
         follow_sun=False) -> int:
    """One heartbeat turn: decide, command, and let the slave report back."""
    offer = offer_for(slave, others, pool, limits, HOLDS, clock.mono, follow_sun=follow_sun)
    slave.record_offer(offer.amps, clock.mono)
    if actual is None:
        actual = max(offer.amps - 0.8, 0.0) if offer.amps else 0.0
    if state is None:
        state = 0x01 if actual >= 1 else 0x03
    slave.update_from_heartbeat(state, float(offer.amps), actual, clock.mono)
    return offer.amps


def run(slave, others, pool, clock, seconds, **kw) -> list[int]:
    offers = []
    for _ in range(int(seconds)):
        offers.append(beat(slave, others, pool, clock, **kw))
        clock.advance(1)
    return offers


# ------------------------------------------------------------------ pool choice

def settings(**kw) -> Settings:
    return Settings(**kw)


@pytest.mark.parametrize("kw, when, green, expected", [
    # charge now beats everything
    (dict(charge_now_amps=40, charge_now_until_at_wall=(MONDAY + timedelta(hours=1)).timestamp(),
          scheduled_amps=16, scheduled_start_min=0, scheduled_end_min=1439, non_scheduled_amps=8),
     MONDAY, 30.0, (40.0, policy.CHARGE_NOW)),
    # scheduled beats non-scheduled
    (dict(scheduled_amps=16, scheduled_start_min=0, scheduled_end_min=1439, non_scheduled_amps=8),
     MONDAY.replace(hour=12), None, (16.0, policy.SCHEDULED)),
    # non-scheduled beats green; 0 = do not charge
    (dict(non_scheduled_amps=8), MONDAY.replace(hour=12), 30.0, (8.0, policy.NON_SCHEDULED)),
    (dict(non_scheduled_amps=0), MONDAY.replace(hour=12), 30.0, (0.0, policy.NON_SCHEDULED)),
    # green when nothing else applies
    (dict(non_scheduled_amps=-1), MONDAY.replace(hour=12), 13.5, (13.5, policy.GREEN)),
    # clamped to the wiring
    (dict(non_scheduled_amps=64), MONDAY.replace(hour=12), None, (40.0, policy.NON_SCHEDULED)),
    # never negative (decisions §4.13; the original showed e.g. -2.79)
    (dict(non_scheduled_amps=-1), MONDAY.replace(hour=12), -2.79, (0.0, policy.GREEN)),
    # no valid reading: 0 A, not the last value (decisions §4.10)
    (dict(non_scheduled_amps=-1), MONDAY.replace(hour=12), None, (0.0, policy.GREEN)),
    # outside green hours
    (dict(non_scheduled_amps=-1), MONDAY.replace(hour=21), 20.0, (0.0, policy.GREEN)),
    (dict(non_scheduled_amps=-1), MONDAY.replace(hour=5, minute=59), 20.0, (0.0, policy.GREEN)),
])
def test_pool_precedence(kw, when, green, expected):
    decision = choose_pool(settings(**kw), when, green, ORIGINAL)
    assert (decision.amps, decision.source) == expected


def test_expired_charge_now_is_not_used():
    s = settings(charge_now_amps=40, charge_now_until_at_wall=MONDAY.timestamp() - 1,
                 non_scheduled_amps=8)
    assert choose_pool(s, MONDAY, None, ORIGINAL).amps == 8


# Fix decisions §4.1: bit 0 = Sunday. The original tested Python's Monday-based bit,
# so a Sunday-only schedule ran on Monday.
@pytest.mark.parametrize("when, active", [
    (SUNDAY.replace(hour=22), True),
    (MONDAY.replace(hour=22), False),
    (MONDAY.replace(hour=3), True),        # after midnight belongs to Sunday's bit
    (SUNDAY.replace(hour=3), False),       # Saturday's bit is off
    (MONDAY.replace(hour=7), False),       # end is exclusive
    (SUNDAY.replace(hour=20, minute=59), False),
    (SUNDAY.replace(hour=21), True),
])
def test_schedule_days_bit0_is_sunday(when, active):
    s = settings(scheduled_amps=16, scheduled_start_min=21 * 60, scheduled_end_min=7 * 60,
                 scheduled_days_bitmap=0b0000001)
    assert policy.schedule_active(s, when) is active


def test_schedule_same_day_window_and_exact_minutes():
    # Fix decisions §4.2: minutes are exact (the original's float hours lost one).
    s = settings(scheduled_amps=10, scheduled_start_min=6 * 60 + 20, scheduled_end_min=6 * 60 + 47,
                 scheduled_days_bitmap=127)
    assert not policy.schedule_active(s, MONDAY.replace(hour=6, minute=19))
    assert policy.schedule_active(s, MONDAY.replace(hour=6, minute=20))
    assert policy.schedule_active(s, MONDAY.replace(hour=6, minute=46))
    assert not policy.schedule_active(s, MONDAY.replace(hour=6, minute=47))


@pytest.mark.parametrize("kw", [
    dict(scheduled_amps=0), dict(scheduled_start_min=-1), dict(scheduled_end_min=-1),
    dict(scheduled_days_bitmap=0), dict(scheduled_start_min=600, scheduled_end_min=600),
])
def test_schedule_disabled(kw):
    base = dict(scheduled_amps=16, scheduled_start_min=0, scheduled_end_min=1439,
                scheduled_days_bitmap=127)
    base.update(kw)
    assert not policy.schedule_active(settings(**base), MONDAY.replace(hour=12))


# ------------------------------------------------------------------ own clock

def test_charge_now_expires_without_any_slave():
    # Fix decisions §4.7: the original only expired it inside slave heartbeats.
    s = settings(charge_now_amps=40, charge_now_until_at_wall=MONDAY.timestamp() + 30)
    clock = policy.Clock()
    assert clock.tick(s, MONDAY) == []
    assert clock.tick(s, MONDAY + timedelta(seconds=31)) == ["charge now expired"]
    assert (s.charge_now_amps, s.charge_now_until_at_wall) == (0, 0)


def test_resume_green_fires_once_at_its_minute():
    s = settings(non_scheduled_amps=8, resume_green_min=6 * 60 + 30)
    clock = policy.Clock()
    t = MONDAY.replace(hour=6, minute=29, second=50)
    assert clock.tick(s, t) == []
    assert clock.tick(s, t + timedelta(seconds=10)) == ["resumed green tracking"]
    assert s.non_scheduled_amps == -1
    s.non_scheduled_amps = 8  # the user sets a fixed value again within the same minute
    assert clock.tick(s, t + timedelta(seconds=20)) == []
    assert s.non_scheduled_amps == 8
    assert s.resume_green_min == 6 * 60 + 30  # kept: it repeats daily


def test_resume_green_not_missed_when_the_minute_is_skipped():
    # The original needed a slave heartbeat during that exact minute (§10 item 15).
    s = settings(non_scheduled_amps=8, resume_green_min=6 * 60 + 30)
    clock = policy.Clock()
    clock.tick(s, MONDAY.replace(hour=6, minute=29, second=30))
    assert clock.tick(s, MONDAY.replace(hour=6, minute=31, second=5)) == ["resumed green tracking"]


def test_resume_green_across_midnight():
    s = settings(non_scheduled_amps=8, resume_green_min=0)
    clock = policy.Clock()
    clock.tick(s, SUNDAY.replace(hour=23, minute=59, second=58))
    assert clock.tick(s, MONDAY.replace(second=1)) == ["resumed green tracking"]


# ------------------------------------------------------------- per-slave offers

def test_start_hold_then_spike_then_settle():
    """§11.3 scenarios 2 and 3: 0 A for 60 s after the slave appears, then 21 A, then 20."""
    clock = FakeClock()
    slave = make_slave(clock)
    offers = run(slave, [], 20, clock, 75)
    assert offers[:60] == [0] * 60
    assert offers[60] == 21
    first_20 = offers.index(20)
    assert 65 <= first_20 <= 67  # "then 20 A about 6 s later"
    assert set(offers[first_20:]) == {20}


def test_start_hold_counts_from_slave_registration_not_program_start():
    # Fix of §10 item 9: a slave first seen long after start still gets its hold.
    clock = FakeClock()
    clock.advance(3600)
    slave = make_slave(clock)
    assert run(slave, [], 20, clock, 10) == [0] * 10


def test_eu_unit_spikes_to_16():
    clock = FakeClock()
    slave = make_slave(clock, protocol=2, rated=32.0)
    offers = run(slave, [], 10, clock, 75, limits=Limits(32, 32, 6))
    assert 16 in offers and offers[-1] == 10
    assert max(offers) == 16


def charging_slave(clock, pool=20, limits=ORIGINAL, **kw) -> SlaveTWC:
    slave = make_slave(clock, **kw)
    run(slave, [], pool, clock, 90, limits=limits)
    assert slave.offered_amps == pool
    return slave


@pytest.mark.parametrize("new_pool, expected", [
    (30, [30]),          # above the spike: directly
    (14, [14]),          # lowering, last change long ago: directly
])
def test_nonscheduled_changes_direct(new_pool, expected):
    """§11.3 scenario 5."""
    clock = FakeClock()
    slave = charging_slave(clock)
    assert run(slave, [], new_pool, clock, 1) == expected


def test_raise_below_spike_goes_through_spike():
    """§11.3 scenario 5: 14 → 16 goes as 21 A, then 16 A about six seconds later."""
    clock = FakeClock()
    slave = charging_slave(clock, pool=14)
    offers = run(slave, [], 16, clock, 15)
    assert offers[0] == 21
    assert offers[offers.index(16)] == 16 and 5 <= offers.index(16) <= 7
    assert set(offers[offers.index(16):]) == {16}


def test_below_minimum_holds_then_stops():
    """§11.3 scenario 5: =8 with min 12 gives 12 A (hold), then 0 A once the draw was
    stable ≥ 4 A for 60 s."""
    clock = FakeClock()
    slave = charging_slave(clock)
    offers = run(slave, [], 8, clock, 70)
    assert offers[0] == 12
    stop_at = offers.index(0)
    assert 55 <= stop_at <= 62
    assert set(offers[:stop_at]) == {12} and set(offers[stop_at:]) == {0}


def test_stop_not_allowed_within_60s_of_start():
    clock = FakeClock()
    slave = make_slave(clock)
    run(slave, [], 20, clock, 61)            # started at 21 A just now
    offers = run(slave, [], 0, clock, 30)
    assert 0 not in offers                   # "don't stop yet" keeps minAmpsToOffer
    assert set(offers[6:]) == {12}


def test_restart_held_60s_after_stop():
    clock = FakeClock()
    slave = charging_slave(clock)
    stopping = run(slave, [], 0, clock, 70)
    assert slave.offered_amps == 0
    seconds_since_stop = len(stopping) - stopping.index(0)
    offers = run(slave, [], 20, clock, 70)
    first_start = offers.index(21)
    assert seconds_since_stop + first_start >= 60
    assert offers[:first_start] == [0] * first_start


@pytest.mark.parametrize("follow_sun, first_stop", [
    (False, 60),   # the original: 60 s after the 20 -> 14 A change of offer and draw
    (True, 0),     # green tracking: started and ramped long ago, lowering does not re-arm
])
def test_stop_hold_after_lowering(follow_sun, first_stop):
    clock = FakeClock()
    slave = charging_slave(clock)                       # 20 A, steady
    run(slave, [], 20, clock, 120, follow_sun=follow_sun)
    run(slave, [], 14, clock, 10, follow_sun=follow_sun)  # lowered: the draw falls too
    offers = run(slave, [], 8, clock, 70, follow_sun=follow_sun)
    assert offers.index(0) == pytest.approx(first_stop, abs=2), offers
    assert set(offers[:offers.index(0)]) <= {12}


def test_green_stop_hold_after_a_rise_of_the_draw():
    clock = FakeClock()
    slave = charging_slave(clock, pool=14)              # 14 A, steady
    run(slave, [], 14, clock, 120, follow_sun=True)
    run(slave, [], 30, clock, 10, follow_sun=True)      # raised: the draw rises to 30 A
    offers = run(slave, [], 8, clock, 70, follow_sun=True)
    assert 48 <= offers.index(0) <= 51, offers          # 60 s after the rise, still ramping


@pytest.mark.parametrize("follow_sun", [False, True])
def test_stop_hold_after_a_start_in_every_mode(follow_sun):
    clock = FakeClock()
    slave = make_slave(clock)
    run(slave, [], 20, clock, 61, follow_sun=follow_sun)  # started just now
    offers = run(slave, [], 0, clock, 70, follow_sun=follow_sun)
    assert 0 in offers and offers.index(0) >= 55, offers
    assert set(offers[6:offers.index(0)]) == {12}


def test_lowering_held_5s():
    clock = FakeClock()
    slave = charging_slave(clock, pool=30)
    run(slave, [], 24, clock, 1)             # lowered just now
    offers = run(slave, [], 22, clock, 8)
    assert offers[:4] == [24] * 4 and offers[-1] == 22


def test_car_stuck_at_spike_gets_two_less():
    clock = FakeClock()
    slave = make_slave(clock)
    # The car stays at 5.2 A whatever it is offered (the Tesla 6 A lock).
    offers = run(slave, [], 20, clock, 90, actual=5.2)
    assert 21 in offers and 19 in offers
    assert offers.index(19) > offers.index(21)


def test_fair_division_between_two_charging_cars():
    clock = FakeClock()
    a = make_slave(clock, twcid=1)
    b = make_slave(clock, twcid=2)
    for _ in range(120):
        beat(a, [b], 32, clock)
        beat(b, [a], 32, clock)
        clock.advance(1)
    assert a.offered_amps + b.offered_amps <= 32
    assert abs(a.offered_amps - b.offered_amps) <= 1
    assert a.offered_amps >= 12


def test_idle_twc_stops_holding_power():
    """§11.3 scenario 4, fixed by decisions §4.9: a slave with no car was offered
    12 A forever by the original; here it gives up after the idle time."""
    clock = FakeClock()
    car = make_slave(clock, twcid=1)
    empty = make_slave(clock, twcid=2)
    offered_to_empty = []
    for _ in range(60 + int(HOLDS.idle_give_up_s) + 30):
        offered_to_empty.append(beat(empty, [car], 20, clock, actual=0.25, state=0x00))
        beat(car, [empty], 20, clock)
        clock.advance(1)
    assert 12 in offered_to_empty  # it was offered power at first, as in the original
    assert empty.idle and empty.offered_amps == 0
    assert car.offered_amps == 20


def test_newly_plugged_car_gets_power_within_a_few_heartbeats():
    """decisions §4.9: the idle unit's car arrives; the pool is shared at once."""
    clock = FakeClock()
    limits = Limits(32, 32, 6)
    a = make_slave(clock, twcid=1, protocol=2, rated=32)
    b = make_slave(clock, twcid=2, protocol=2, rated=32)
    for _ in range(300):  # long enough that its stop is past the 60 s restart hold
        beat(b, [a], 32, clock, actual=0.25, state=0x00, limits=limits)
        beat(a, [b], 32, clock, limits=limits)
        clock.advance(1)
    assert b.idle and a.offered_amps == 32
    # plug in: the unit reports a car asking for power
    b_offers = []
    for _ in range(15):
        beat(a, [b], 32, clock, limits=limits)
        b_offers.append(beat(b, [a], 32, clock, limits=limits,
                             state=0x04 if not b.offered_amps else None))
        clock.advance(1)
    first = next(i for i, amps in enumerate(b_offers) if amps)
    assert first <= 8
    assert a.offered_amps + b.offered_amps <= 32


def test_wiring_above_rating_caps_at_rating_not_a_quarter():
    # Fix decisions §4.8: the original capped an EU 32 A unit with 40 A wiring at 8 A.
    clock = FakeClock()
    slave = make_slave(clock, protocol=2, rated=32.0)
    offers = run(slave, [], 40, clock, 80, limits=Limits(40, 40, 12))
    assert max(offers) == 32 and offers[-1] == 32


def test_offers_never_exceed_the_wiring_total_while_sharing():
    # The original checked actual amps, so two slaves were both offered 21 A on 40 A
    # wiring (§10 item 12); offers are what is checked here.
    clock = FakeClock()
    a, b = make_slave(clock, twcid=1), make_slave(clock, twcid=2)
    limits = Limits(30, 30, 12)
    for _ in range(200):
        for me, other in ((a, b), (b, a)):
            beat(me, [other], 30, clock, limits=limits)
            assert a.offered_amps + b.offered_amps <= 30
        clock.advance(1)


def test_plugged_car_joins_a_charging_one_and_they_converge():
    clock = FakeClock()
    limits = Limits(40, 40, 6)
    a = make_slave(clock, twcid=1)
    run(a, [], 30, clock, 90, limits=limits)
    b = make_slave(clock, twcid=2)
    clock.advance(61)
    offers = []
    for _ in range(40):
        offers.append((beat(a, [b], 30, clock, limits=limits),
                       beat(b, [a], 30, clock, limits=limits,
                            state=0x04 if not b.offered_amps else None)))
        assert a.offered_amps + b.offered_amps <= 40
        clock.advance(1)
    assert offers[0][1] > 0          # the newcomer gets power on its first turn
    assert offers[-1] == (15, 15)


def test_waiting_car_does_not_starve_a_charging_one_on_a_small_pool():
    # A pool of 10 A feeds one car; counting the waiting one would stop both.
    clock = FakeClock()
    limits = Limits(32, 32, 6)
    a = make_slave(clock, twcid=1, protocol=2, rated=32)
    run(a, [], 10, clock, 90, limits=limits)
    b = make_slave(clock, twcid=2, protocol=2, rated=32)
    for _ in range(120):
        beat(a, [b], 10, clock, limits=limits)
        beat(b, [a], 10, clock, limits=limits, actual=0.0, state=0x04)
        clock.advance(1)
    assert (a.offered_amps, b.offered_amps) == (10, 0)


# ------------------------------------------------------------ §6.2 bookkeeping

def test_bookkeeping_significant_change_is_more_than_0_8_amps():
    clock = FakeClock()
    slave = make_slave(clock)
    slave.update_from_heartbeat(0x01, 16.0, 10.0, clock.advance(1))
    changed_at = slave.actual_changed_at
    slave.update_from_heartbeat(0x01, 16.0, 10.8, clock.advance(1))   # 0.8: not significant
    assert slave.actual_changed_at == changed_at
    slave.update_from_heartbeat(0x01, 16.0, 10.81, clock.advance(1))  # more: significant
    assert slave.actual_changed_at == clock.mono and slave.actual_monitor_amps == 10.81


def test_bookkeeping_first_report_is_the_limit_in_force():
    # §6.2 step 2: before we command anything, the unit's own limit counts as offered,
    # so it is included in the wiring total.
    clock = FakeClock()
    slave = SlaveTWC(twcid=1, sign=1, protocol=2, rated_amps=32, registered_at=clock.mono)
    slave.update_from_heartbeat(0x01, 24.0, 23.0, clock.mono)
    assert slave.offered_amps == 24 and not slave.commanded
    other = make_slave(clock, twcid=2, protocol=2, rated=32)
    offer = policy.clamp_offer(other, [slave], 20, "test", Limits(32, 32, 6))
    assert offer.amps == 8
