"""Green tracking: parsing the energy command, the hysteresis table on a fake clock
(evcc's TestPVHysteresis style), the fail-safe, and the command runner."""
from __future__ import annotations

import sys

import pytest

from TWCManager.green import (FAILING, OK, STALE, CommandSource, GreenParams, GreenService,
                              GreenTracker, Reading, parse_output)

from .util import wait_until

WPA = 690.0  # 230 V × 3 phases


@pytest.mark.parametrize("text, expected", [
    ("1234\n", (1234.0, None, None)),
    ("-800", (-800.0, None, None)),
    ('{"grid_w": 1500, "solar_w": 4000, "house_w": 2500}', (1500.0, 4000.0, 2500.0)),
    ('{"grid_w": -20.5}', (-20.5, None, None)),
])
def test_parse_output(text, expected):
    assert parse_output(text) == expected


@pytest.mark.parametrize("text", ["", "Inverter unreachable", "12.5.3", '{"solar_w": 1}',
                                  '{"grid_w": true}', "{broken"])
def test_parse_output_refuses(text):
    with pytest.raises(ValueError):
        parse_output(text)


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
                                       ride_through_wh=1e9, ride_through_min_share=0.0))
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


def test_service_status_and_history():
    class Fixed:
        def __init__(self):
            self.value = Reading(2000, 7000, 5000, 0, 1_800_000_000)  # house incl. the car

        def latest(self):
            return self.value

        def status(self, now):
            return {"state": OK}

    service = GreenService(Fixed(), GreenParams(start_delay_s=0))
    service.decide(10, 1_800_000_010, 6.0, 6, WPA)
    status = service.status(10)
    assert status["grid_w"] == 2000 and status["solar_w"] == 7000
    assert status["house_w"] == 5000 - round(6 * WPA)  # the rest of the house
    assert status["car_w"] == round(6 * WPA) and status["state"] == OK
    service.decide(70, 1_800_000_070, 6.0, 6, WPA)
    assert [s["t"] for s in service.history.samples] == [1_800_000_000, 1_800_000_060]


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_command_source_reads_and_fails_and_goes_stale(tmp_path):
    value = tmp_path / "watts"
    value.write_text("1500")
    clock = FakeClock()
    script = f"{sys.executable} -c \"import sys; t=open('{value}').read(); print(t) if t != 'x' " \
             f"else (print('Inverter unreachable'), sys.exit(255))\""
    source = CommandSource(script, interval_s=30, stale_after_s=120, clock=clock)
    assert source.read_once().grid_w == 1500
    assert source.status(clock.now)["state"] == OK
    value.write_text("x")
    assert source.read_once() is None
    status = source.status(clock.now)
    assert status["state"] == FAILING and "Inverter unreachable" in status["last_error"]
    clock.now += 121
    assert source.status(clock.now)["state"] == STALE
    value.write_text("-300")
    assert source.read_once().grid_w == -300
    assert source.status(clock.now)["state"] == OK


def test_hung_command_is_cut_at_its_timeout():
    source = CommandSource(f"{sys.executable} -c \"import time; time.sleep(30)\"",
                           interval_s=30, stale_after_s=120, timeout_s=0.5)
    assert source.read_once() is None
    assert "no answer within 0.5 s" in source.status(0)["last_error"]


def test_command_source_thread_runs_every_interval(tmp_path):
    source = CommandSource(f"{sys.executable} -c \"print(42)\"", interval_s=0.2, stale_after_s=5)
    source.start()
    try:
        assert wait_until(lambda: source.reads >= 3, timeout_s=10)
    finally:
        source.stop()
    assert source.latest().grid_w == 42


def test_solaredge_resolves_to_the_checkout_module_when_not_installed(monkeypatch):
    from TWCManager import green

    monkeypatch.setattr("shutil.which", lambda name: None)
    assert green.resolve_command(["solaredge", "-grid"]) == [
        sys.executable, "-m", "TWCManager.solaredge", "-grid"]


def test_reading_is_paired_with_the_car_draw_at_its_time():
    """A reading taken before the car started must not count the car's draw twice."""
    class Source:
        value = Reading(10 * WPA, None, None, 100.0, 1_800_000_100.0)

        def latest(self):
            return self.value

        def status(self, now):
            return {"state": OK}

    service = GreenService(Source(), GreenParams(start_delay_s=0))
    for t in range(95, 110):  # the car starts drawing 8 A at t = 105
        decision = service.decide(t, 1_800_000_000 + t, 8.0 if t >= 105 else 0.0, 6, WPA)
    # the export of 10 A was measured while the car drew nothing: 10 A, not 18 A
    assert decision.amps == pytest.approx(10.0)
    Source.value = Reading(2 * WPA, None, None, 110.0, 1_800_000_110.0)
    decision = service.decide(111, 1_800_000_111, 8.0, 6, WPA)
    assert decision.amps == pytest.approx(10.0)  # 2 A export + 8 A drawn then


def test_status_house_excludes_the_car():
    class Source:
        def latest(self):
            return Reading(1000, 7000, 6000, 0.0, 1_800_000_000.0)  # house incl. car

        def status(self, now):
            return {"state": OK}

    service = GreenService(Source(), GreenParams(start_delay_s=0))
    service.decide(1, 1_800_000_001, 8.0, 6, 690.0)
    assert service.status(1)["house_w"] == 6000 - 8 * 690


def test_command_source_reads_less_often_when_green_is_not_in_use():
    active = {"green": False}
    source = CommandSource(f"{sys.executable} -c \"print(42)\"", interval_s=0.2,
                           stale_after_s=5, active=lambda: active["green"], idle_interval_s=30)
    source.start()
    try:
        assert wait_until(lambda: source.reads >= 1, timeout_s=10)
        reads = source.reads
        active["green"] = True  # green tracking selected: back to every interval_s
        assert wait_until(lambda: source.reads >= reads + 3, timeout_s=10)
        active["green"] = False
        settled = source.reads + 1  # the read under way may still finish
        assert not wait_until(lambda: source.reads > settled, timeout_s=1.5)
    finally:
        source.stop()
