"""Green tracking: the hysteresis table on a fake clock (evcc's TestPVHysteresis style), the
fail-safe, and the service that pairs readings with the car's draw (the meter command itself:
tests/test_energy_command.py)."""
from __future__ import annotations

import pytest

from TWCManager.core import green
from TWCManager.core.green import GreenParams, GreenService, GreenTracker
from TWCManager.core.interfaces import MeterReading as Reading
from TWCManager.core.interfaces import SiteReadings

WPA = 690.0  # 230 V × 3 phases


def reading(grid_w, at):
    return Reading(grid_w, None, None, at, 1_800_000_000 + at)


# (seconds since start, grid watts, car amps, expected amps or None, tracker on)
# start_delay 60 s, stop_delay 180 s, min 6 A, 690 W per amp; the time delays alone
# (no energy budget, no deep-cloud share).
HYSTERESIS = [
    (0, 0, 0, 0.0, False),               # no surplus
    (10, 6 * WPA, 0, 0.0, False),         # enough for 6 A: starting in 60 s if it lasts
    (40, 6 * WPA, 0, 0.0, False),
    (69, 6 * WPA, 0, 0.0, False),
    (70, 6 * WPA, 0, 6.0, True),          # lasted 60 s: start
    (80, 2 * WPA, 6, 8.0, True),          # car draws 6 A, 2 A more exported: 8 A
    (90, -3 * WPA, 6, 6.0, True),         # a cloud: 3 A short, held at the minimum
    (200, -3 * WPA, 6, 6.0, True),        # still within 180 s
    (210, 1 * WPA, 6, 7.0, True),         # the sun is back before the stop: continue
    (220, -3 * WPA, 6, 6.0, True),        # a long cloud begins
    (399, -3 * WPA, 6, 6.0, True),
    (400, -3 * WPA, 6, 3.0, False),       # 180 s short: stop (3 A < minimum)
    (410, 10 * WPA, 0, 0.0, False),       # a restart needs its own 60 s
]


def test_hysteresis_table():
    tracker = GreenTracker(GreenParams(start_delay_s=60, stop_delay_s=180, stale_after_s=120,
                                       ride_through_wh=1e9, ride_through_min_share=0.0,
                                       raise_delay_s=0))
    for t, grid_w, car_amps, amps, on in HYSTERESIS:
        decision = tracker.update(t, reading(grid_w, t), car_amps, 6.0, WPA)
        assert (round(decision.amps, 2), tracker.on) == (amps, on), (t, decision.reason)


def ride(tracker, start, seconds, available_amps, car_amps=6.0):
    """Feed `seconds` one-second updates of a surplus worth `available_amps`; returns the
    second at which the tracker stopped, or None."""
    grid_w = (available_amps - car_amps) * WPA
    for t in range(start, start + seconds):
        tracker.update(t, reading(grid_w, t), car_amps, 6.0, WPA)
        if not tracker.on:
            return t
    return None


def on_tracker(**kw) -> GreenTracker:
    params = dict(start_delay_s=0, stop_delay_s=180, ride_through_wh=20,
                  ride_through_min_share=0.67)
    tracker = GreenTracker(GreenParams(**{**params, **kw}))
    assert ride(tracker, 0, 10, 10.0, car_amps=0.0) is None and tracker.on
    return tracker


def test_a_shallow_cloud_is_ridden_through_until_it_has_cost_the_budget():
    tracker = on_tracker()
    # 1 A short at the 6 A minimum: 690 W from the grid, 20 Wh after 104.3 s.
    stopped_at = ride(tracker, 10, 200, 5.0)
    assert stopped_at == 10 + 104
    assert "Wh from the grid" in tracker.last.reason and tracker.last.amps == 5.0


def test_a_deeper_cloud_spends_the_budget_sooner():
    tracker = on_tracker()
    assert ride(tracker, 10, 200, 4.5) == 10 + 69      # 1035 W short: 20 Wh in 69.6 s


def test_a_deep_cloud_stops_at_once():
    tracker = on_tracker()
    assert ride(tracker, 10, 5, 3.9) == 10             # 65 % of the minimum < 67 %
    assert "covers 65% of the minimum" in tracker.last.reason


def test_the_sun_returning_refills_the_budget():
    tracker = on_tracker()
    assert ride(tracker, 10, 90, 5.0) is None          # 17 Wh spent
    assert ride(tracker, 100, 1, 7.0) is None          # one second of enough sun
    assert ride(tracker, 101, 100, 5.0) is None        # a new cloud, a new 20 Wh


def test_the_time_delay_caps_a_cheap_ride_through():
    tracker = on_tracker(stop_delay_s=60)
    assert ride(tracker, 10, 200, 5.9) == 10 + 60      # 69 W short: only 1.2 Wh, but 60 s
    assert "short for 60 s" in tracker.last.reason


@pytest.mark.parametrize("kw", [dict(ride_through_wh=0), dict(stop_delay_s=0),
                                dict(ride_through_min_share=1.0)])
def test_each_knob_at_its_limit_stops_at_once(kw):
    tracker = on_tracker(**kw)
    assert ride(tracker, 10, 5, 5.9) == 10


def test_a_stalled_loop_does_not_count_as_minutes_of_import():
    tracker = on_tracker()
    tracker.update(10, reading(-1.5 * WPA, 10), 6.0, 6.0, WPA)
    # 100 s without an update (a stalled loop) counts as GreenTracker.MAX_STEP_S at most:
    # counted whole, 1035 W x 100 s = 29 Wh would have stopped the car.
    tracker.update(110, reading(-1.5 * WPA, 110), 6.0, 6.0, WPA)
    assert tracker.on


def test_stale_reading_offers_nothing_and_says_why():
    tracker = GreenTracker(GreenParams(start_delay_s=0, stop_delay_s=180, stale_after_s=120))
    assert tracker.update(0, reading(10 * WPA, 0), 0, 6, WPA).amps == 10
    assert tracker.update(120, reading(10 * WPA, 0), 0, 6, WPA).amps == 10
    decision = tracker.update(121, reading(10 * WPA, 0), 0, 6, WPA)
    assert decision.amps is None and "121 s" in decision.reason
    assert not tracker.on  # the stop delay does not apply to a dead source
    assert tracker.update(130, None, 0, 6, WPA).amps is None
    # readings return: resumes by itself
    assert tracker.update(140, reading(10 * WPA, 140), 0, 6, WPA).amps == 10


def test_measured_volts_and_offset():
    tracker = GreenTracker(GreenParams(start_delay_s=0, amps_offset=-1.5))
    # a 1-phase US unit reporting 240 V: 2400 W export is 10 A, minus the offset
    assert tracker.update(0, reading(2400, 0), 0, 6, 240.0).amps == pytest.approx(8.5)
    # without measured volts, volts × phases from the config (230 × 3)
    assert tracker.update(1, reading(6900, 1), 0, 6, None).amps == pytest.approx(8.5)


def meter(reading):
    return SiteReadings(meter=reading)


def test_service_status_and_history():
    value = meter(Reading(2000, 7000, 5000, 0, 1_800_000_000))  # house incl. the car
    service = GreenService(GreenParams(start_delay_s=0))
    service.decide(10, 1_800_000_010, value, 6.0, 6, WPA)
    status = service.status()
    assert status["grid_w"] == 2000 and status["solar_w"] == 7000
    assert status["house_w"] == 5000 - round(6 * WPA)  # the rest of the house
    assert status["car_w"] == round(6 * WPA)
    service.decide(70, 1_800_000_070, value, 6.0, 6, WPA)
    assert [s["t"] for s in service.history.samples] == [1_800_000_000, 1_800_000_060]


def test_reading_is_paired_with_the_car_draw_at_its_time():
    """A reading taken before the car started must not count the car's draw twice."""
    value = meter(Reading(10 * WPA, None, None, 100.0, 1_800_000_100.0))
    service = GreenService(GreenParams(start_delay_s=0))
    for t in range(95, 110):  # the car starts drawing 8 A at t = 105
        decision = service.decide(t, 1_800_000_000 + t, value, 8.0 if t >= 105 else 0.0, 6, WPA)
    # the export of 10 A was measured while the car drew nothing: 10 A, not 18 A
    assert decision.amps == pytest.approx(10.0)
    value = meter(Reading(2 * WPA, None, None, 110.0, 1_800_000_110.0))
    decision = service.decide(111, 1_800_000_111, value, 8.0, 6, WPA)
    assert decision.amps == pytest.approx(10.0)  # 2 A export + 8 A drawn then


def test_status_house_excludes_the_car():
    value = meter(Reading(1000, 7000, 6000, 0.0, 1_800_000_000.0))  # house incl. car
    service = GreenService(GreenParams(start_delay_s=0))
    service.decide(1, 1_800_000_001, value, 8.0, 6, 690.0)
    assert service.status()["house_w"] == 6000 - 8 * 690




def test_a_reading_taken_during_a_ramp_is_paired_with_the_draw_between_two_reports():
    """A 2 s meter sees a car ramping up before its TWC reports it: the reading at t = 10.5
    falls between a report of 6 A (t = 10) and one of 12 A (t = 11): 9 A then, not 6 A."""
    service = GreenService(GreenParams(start_delay_s=0, raise_delay_s=0))
    # 13 A of sun; at t = 10.5 the car drew 9 A, so the meter saw 4 A of export.
    service.decide(10.0, 1_800_000_010, meter(None), 6.0, 6, WPA, car_reported_at=10.0)
    reading = meter(Reading(4 * WPA, None, None, 10.5, 1_800_000_010.5))
    waiting = service.decide(10.6, 1_800_000_010.6, reading, 6.0, 6, WPA, car_reported_at=10.0)
    # No report since the reading: it waits (no earlier paired reading: the last report used).
    assert waiting.amps == pytest.approx(10.0)
    decision = service.decide(11.1, 1_800_000_011.1, reading, 12.0, 6, WPA, car_reported_at=11.0)
    assert decision.amps == pytest.approx(13.0)   # 4 A export + 9 A drawn then


def test_a_reading_newer_than_the_last_report_waits_for_the_next_one():
    service = GreenService(GreenParams(start_delay_s=0, raise_delay_s=0))
    first = meter(Reading(4 * WPA, None, None, 9.0, 1_800_000_009.0))
    assert service.decide(9.5, 0, first, 6.0, 6, WPA, car_reported_at=9.5).amps == 10.0
    # The car ramps; the meter sees it first (export 1 A while the report still says 6 A).
    fresh = meter(Reading(1 * WPA, None, None, 11.0, 1_800_000_011.0))
    held = service.decide(11.2, 0, fresh, 6.0, 6, WPA, car_reported_at=10.5)
    assert held.amps == pytest.approx(10.0)       # the paired reading of t = 9 still stands
    assert service.decide(11.6, 0, fresh, 9.0, 6, WPA, car_reported_at=11.5).amps == \
        pytest.approx(1 + 6 + (9 - 6) * (11.0 - 10.5) / (11.5 - 10.5))
    # A report never comes (the unit went silent): after PAIR_WAIT_S the last one is used.
    silent = meter(Reading(2 * WPA, None, None, 12.0, 1_800_000_012.0))
    assert service.decide(12.5, 0, silent, 9.0, 6, WPA, car_reported_at=11.5).amps == \
        pytest.approx(1 + 7.5)                    # still the reading of t = 11
    late = service.decide(12.0 + green.PAIR_WAIT_S, 0, silent, 9.0, 6, WPA,
                          car_reported_at=11.5)
    assert late.amps == pytest.approx(2 + 9)


def test_car_draw_log_interpolates_and_keeps_one_entry_per_report():
    log = green.CarDrawLog()
    assert log.around(5.0) is None
    log.add(10.0, 6.0)
    log.add(10.0, 6.5)      # the same report seen again by a later step
    log.add(9.0, 99.0)      # older than the last: ignored
    log.add(12.0, 10.5)
    assert log.around(9.0) == 6.5 and log.around(10.0) == 6.5
    assert log.around(11.0) == pytest.approx(8.5) and log.around(12.0) == 10.5
    assert log.around(12.1) is None


def test_a_rise_must_last_the_raise_delay_and_a_fall_is_followed_at_once():
    """A 2 s meter sees a ramping car's noise; each raise below 16 A costs the Gen2 spike."""
    tracker = GreenTracker(GreenParams(start_delay_s=0, raise_delay_s=6))
    table = [  # (t, available A, amps decided, reason part)
        (0, 10.5, 10.5, "starting"),
        (2, 11.7, 10.5, "raising in 6 s if it lasts"),   # one noisy reading: held
        (4, 10.4, 10.4, "surplus 10.4 A"),                # gone: the wait starts again
        (6, 12.2, 10.4, "raising in 6 s"),
        (10, 12.3, 10.4, "raising in 2 s"),
        (12, 12.1, 12.1, "surplus 12.1 A"),               # lasted 6 s: raised
        (14, 12.6, 12.6, "surplus 12.6 A"),               # the same whole amps: no wait
        (16, 8.0, 8.0, "surplus 8.0 A"),                  # lower at once
    ]
    for t, available, amps, reason in table:
        decision = tracker.update(t, reading(available * WPA, t), 0.0, 6.0, WPA)
        assert decision.amps == pytest.approx(amps) and reason in decision.reason, (t, decision)


def test_the_house_is_measured_with_the_cars_draw_at_the_readings_time():
    """Figures that belong together are measured together (issue 14 point 2): the meter's
    consumption minus what the car drew when that reading was taken, never below 0."""
    service = GreenService(GreenParams())
    service.car_draw.add(100.0, 0.0)             # the car off when the reading is taken...
    service.car_draw.add(104.0, 16.0)            # ...at 16 A by the time the status is asked
    service.note_car(16.0, WPA)
    at_100 = Reading(-500.0, 0.0, 500.0, 100.0, 1_800_000_100.0)
    status = service.status(at_100)
    assert status["house_w"] == 500 and status["car_at_reading_w"] == 0
    assert status["car_w"] == round(16 * WPA)    # the draw now, shown as such
    later = Reading(-500.0, 0.0, 500.0, 104.0, 1_800_000_104.0)   # consumption < car: clamp
    assert service.status(later)["house_w"] == 0
