"""Green-energy tracking: how many amps the solar surplus can feed the cars. Pure.

* `GreenTracker` (time passed in): surplus → amps, with start/stop hysteresis so passing
  clouds do not cycle the car, and the fail-safe of decisions.md §4.10 (no valid reading for
  stale_after_s → 0 A, and why).
* `CarDrawLog`: pairs a meter reading with the cars' draw at the time it was taken.
* `GreenService`: both, plus the dashboard chart's history, as one site step uses them.
The meter itself (the `solaredge` command) is an edge: `TWCManager.energy`.
"""
from __future__ import annotations

import bisect
import logging
import math
from collections import deque
from dataclasses import dataclass, field, fields

from ..config import GreenConfig
from .interfaces import MeterReading, Pricing, SiteReadings

log = logging.getLogger("TWCManager.green")

# How long a reading may wait for the units' next report of their draw: a heartbeat round is
# 1 s per unit, up to 3 units.
PAIR_WAIT_S = 3.5
# The Gen2 start hold (policy.Holds.start_stop_s): what a stop costs in sun before a restart.
GEN2_START_HOLD_S = 60.0
DRAW_SETTLE_S = 10.0       # a limit this old: the car has finished ramping to it
DRAW_GAP_WEIGHT = 0.05     # each settled report's weight in the average draw gap



@dataclass(frozen=True)
class GreenParams:
    """The tracker's settings; the defaults are the config's (one place: config.py,
    where README "Green tracking" explains them)."""
    volts: float = GreenConfig.volts
    phases: int = GreenConfig.phases
    amps_offset: float = GreenConfig.amps_offset
    stale_after_s: float = GreenConfig.stale_after_s
    start_delay_s: float = GreenConfig.start_delay_s
    stop_delay_s: float = GreenConfig.stop_delay_s
    ride_through_wh: float = GreenConfig.ride_through_wh
    ride_through_min_share: float = GreenConfig.ride_through_min_share
    raise_delay_s: float = GreenConfig.raise_delay_s
    mode: str = GreenConfig.mode         # "", "solar" or "cheapest" (decisions §6.2)
    restart_budget_share: float = GreenConfig.restart_budget_share

    @classmethod
    def from_config(cls, green: GreenConfig) -> GreenParams:
        # Every field here is the config key of the same name.
        return cls(**{f.name: getattr(green, f.name) for f in fields(cls)})

    # volts × phases, the config's own rule (decisions §4.15): one definition.
    watts_per_amp = GreenConfig.watts_per_amp


@dataclass
class GreenDecision:
    amps: float | None        # None: no valid reading (the policy offers 0 A)
    reason: str


class GreenTracker:
    """Surplus to amps with hysteresis. Pure: every input, time included, is passed in.

    available = (grid_w + car_amps × W/A) / (W/A) + amps_offset, with car_amps the
    draw when the reading was taken and W/A the watts per amp (the TWC's measured phase volts summed, else volts × phases).
    Start: available ≥ the minimum for start_delay_s. A shortfall is ridden through at
    the minimum until the first of: the grid energy it cost (the minimum minus the
    surplus, integrated) reaches ride_through_wh; the surplus covers less than
    ride_through_min_share of the minimum; it lasted stop_delay_s. Then the car
    stops. A dead source stops at once.

    The flavours of decisions §6.2 change what a shortfall may buy. `solar`: nothing; a
    shortfall stops the car at once (the Gen2 holds still apply). `cheapest`, with prices: the
    car charges at the minimum whenever the sun covers at least `Pricing.ride_share()` of it
    (then a grid kWh now costs less than the sun kWh it keeps: ~24 % at blue prices, ~82 % at
    red ones), from the start as through a cloud, and stops at once below; a fraction of an
    amp above that share is rounded up, below it down.
    """

    # Longest step counted into a shortfall's cost: a stalled loop must not look like
    # minutes of import.
    MAX_STEP_S = 5.0

    def __init__(self, params: GreenParams) -> None:
        self.params = params
        self.on = False
        self._above_since: float | None = None
        self._below_since: float | None = None
        self._shortfall_wh = 0.0
        self._shortfall_eur = 0.0
        # How far below its limit the car draws once settled (a car's own margin), for
        # `cheapest`'s rounding; GreenService measures it.
        self.draw_gap_a = 0.0
        self._rise_since: float | None = None
        self._last_now: float | None = None
        self.last = GreenDecision(None, "no reading yet")
        self.available_amps: float | None = None

    def update(self, now: float, reading: MeterReading | None, car_amps: float,
               min_amps: float, watts_per_amp: float | None = None,
               pricing: Pricing | None = None, mode: str | None = None) -> GreenDecision:
        p = self.params
        mode = mode or p.mode        # the page's choice, else the configuration's
        # The share of the minimum worth charging at (None: the round-1 rules).
        share_needed = pricing.ride_share() if mode == "cheapest" and pricing else None
        step_s = 0.0 if self._last_now is None else min(max(now - self._last_now, 0.0),
                                                         self.MAX_STEP_S)
        self._last_now = now
        if reading is None or now - reading.at > p.stale_after_s:
            self.on, self._above_since, self._below_since = False, None, None
            self.available_amps = None
            self.last = GreenDecision(None, "no valid energy reading" if reading is None else
                                      f"no valid energy reading for {now - reading.at:.0f} s")
            return self.last
        wpa = watts_per_amp or p.watts_per_amp
        # car_amps must be the draw when the reading was taken (GreenService looks it up in
        # its CarDrawLog): a later draw added to an old grid value counts every amp taken
        # since twice (bench/solar_day.py showed the offer cycling 6 -> 16 A every 60 s).
        available = reading.grid_w / wpa + car_amps + p.amps_offset
        self.available_amps = available
        start_amps = min_amps if share_needed is None else min_amps * share_needed
        if available >= start_amps:
            self._below_since = None
            if self.on:
                self.last = self._priced(self._rise_held(now, available), available, min_amps,
                                         share_needed, pricing)
            else:
                self._above_since = self._above_since if self._above_since is not None else now
                wait_s = p.start_delay_s - (now - self._above_since)
                if wait_s <= 0:
                    self.on = True
                    self.last = self._priced(
                        GreenDecision(available, f"surplus {available:.1f} A: starting"),
                        available, min_amps, share_needed, pricing)
                else:
                    self.last = GreenDecision(0.0, f"surplus {available:.1f} A: starting in "
                                                   f"{wait_s:.0f} s if it lasts")
        else:
            self._above_since = None
            if not self.on:
                below = f"{start_amps:.1f} A ({share_needed:.0%} of {min_amps:g} A: " \
                    f"less sun is not worth a grid kWh at {pricing.day_eur_kwh:.4f} €/kWh)" \
                    if share_needed is not None else f"{min_amps:g} A"
                more_w = (start_amps - available) * wpa
                self.last = GreenDecision(max(available, 0.0),
                                          f"surplus {available:.1f} A is below {below}: "
                                          f"waiting for {more_w:.0f} W more sun")
            elif share_needed is not None:
                self.last = self._priced_shortfall(now, step_s, available, min_amps, wpa,
                                                   share_needed, pricing)
            elif mode == "solar":
                self.on = False
                self.last = GreenDecision(max(available, 0.0), f"surplus {available:.1f} A: "
                                          "stopped (solar mode buys no grid power)")
            else:
                if self._below_since is None:
                    self._below_since, self._shortfall_wh = now, 0.0
                # What riding through costs: the grid feeds the minimum's missing part.
                self._shortfall_wh += (min_amps - available) * wpa * step_s / 3600.0
                why = self._why_stop(now, available / min_amps)
                if why:
                    self.on = False
                    self.last = GreenDecision(max(available, 0.0),
                                              f"surplus {available:.1f} A: stopped ({why})")
                else:
                    # A passing cloud: keep the car at its minimum for a while.
                    self.last = GreenDecision(
                        min_amps, f"surplus {available:.1f} A: riding through at {min_amps:g} A "
                                  f"({self._shortfall_wh:.0f} of {p.ride_through_wh:g} Wh)")
        return self.last

    def _priced_shortfall(self, now: float, step_s: float, available: float, min_amps: float,
                          wpa: float, share_needed: float, pricing: Pricing) -> GreenDecision:
        """`cheapest`, while on and the sun covers less than the share that pays: riding on
        at the minimum loses money each second, stopping loses the sun of a restart (the
        Gen2 start hold: ~60 s of the minimum exported instead of charged). Ride on while the
        loss so far is below `restart_budget_share` of that; then stop. 0 stops at once (the
        most euros, the most starts); 1 spends what a restart would lose (bench/money_day.py
        prints the trade-off)."""
        if self._below_since is None:
            self._below_since, self._shortfall_eur = now, 0.0
        sun_a = max(available, 0.0)
        loss_eur_per_s = ((min_amps - sun_a) * (pricing.day_eur_kwh - pricing.night_eur_kwh)
                          - sun_a * (pricing.night_eur_kwh - pricing.export_eur_kwh)) \
            * wpa / 3.6e6
        self._shortfall_eur += loss_eur_per_s * step_s
        restart_s = self.params.start_delay_s + GEN2_START_HOLD_S
        budget_eur = self.params.restart_budget_share * min_amps * wpa * restart_s / 3.6e6 * (
            pricing.night_eur_kwh - pricing.export_eur_kwh)
        cover = (f"the sun covers {available / min_amps:.0%} of {min_amps:g} A, below the "
                 f"{share_needed:.0%} that pays at {pricing.day_eur_kwh:.4f} €/kWh")
        if self._shortfall_eur >= budget_eur:
            self.on = False
            return GreenDecision(sun_a, (
                f"surplus {available:.1f} A: stopped ({cover}; riding on lost "
                f"{self._shortfall_eur:.3f} €, the budget of what a restart would lose)"))
        return GreenDecision(min_amps, (
            f"surplus {available:.1f} A: riding through at {min_amps:g} A ({cover}; "
            f"{self._shortfall_eur:.3f} of {budget_eur:.3f} € a restart would lose)"))

    def _priced(self, decision: GreenDecision, available: float, min_amps: float,
                share_needed: float | None, pricing: Pricing | None) -> GreenDecision:
        """`cheapest`: at least the minimum while the sun covers the share that pays, and the
        whole amps whose draw is worth most: a car draws `draw_gap_a` below its limit, so
        offering one amp more than the sun covers may still take only sun, or a little grid
        worth the sun it keeps."""
        if share_needed is None or decision.amps is None:
            return decision
        if available < min_amps:
            return GreenDecision(min_amps, (
                f"surplus {available:.1f} A: charging at {min_amps:g} A, the sun covers "
                f"{available / min_amps:.0%} (worth it above {share_needed:.0%} at "
                f"{pricing.day_eur_kwh:.4f} €/kWh)"))
        amps = decision.amps
        floor = math.floor(amps)
        sun_eur = pricing.night_eur_kwh - pricing.export_eur_kwh
        grid_eur = pricing.day_eur_kwh - pricing.night_eur_kwh

        def worth(offer: int) -> float:
            draw = max(offer - self.draw_gap_a, 0.0)
            return min(draw, amps) * sun_eur - max(draw - amps, 0.0) * grid_eur

        best = max((floor, floor + 1, floor + 2), key=lambda k: (worth(k), -k))
        if best > floor:
            return GreenDecision(float(best), decision.reason + (
                f" (offering {best} A: the car draws ~{self.draw_gap_a:.1f} A below it)"))
        return decision

    def _rise_held(self, now: float, available: float) -> GreenDecision:
        """More whole amps than the last decision only once the surplus has lasted
        raise_delay_s: each raise below 16 A costs the Gen2 spike (16 A for 5 s, partly from
        the grid), and a 2 s meter sees a ramping car's noise (bench/soak.py: 10 -> 16 -> 10 A
        every few seconds without this). Lower at once."""
        held = self.last.amps
        if held is None or int(available) <= int(held) or not self.on:
            self._rise_since = None
            return GreenDecision(available, f"surplus {available:.1f} A")
        if self._rise_since is None:
            self._rise_since = now
        wait_s = self.params.raise_delay_s - (now - self._rise_since)
        if wait_s <= 0:
            self._rise_since = None
            return GreenDecision(available, f"surplus {available:.1f} A")
        return GreenDecision(held, f"surplus {available:.1f} A: raising in {wait_s:.0f} s "
                                   "if it lasts")

    def _why_stop(self, now: float, share: float) -> str | None:
        p = self.params
        if share < p.ride_through_min_share:
            return f"the sun covers {share:.0%} of the minimum"
        if self._shortfall_wh >= p.ride_through_wh:
            return f"the cloud cost {self._shortfall_wh:.0f} Wh from the grid"
        if now - self._below_since >= p.stop_delay_s:
            return f"short for {now - self._below_since:.0f} s"
        return None


@dataclass
class _History:
    """One sample a minute for the dashboard chart (6 h by default)."""
    samples: deque = field(default_factory=lambda: deque(maxlen=360))
    _minute: int = -1

    def add(self, at_wall: float, reading: MeterReading | None, car_w: float) -> None:
        minute = int(at_wall // 60)
        if minute == self._minute:
            return
        self._minute = minute
        self.samples.append({
            "t": minute * 60,
            "grid_w": None if reading is None else round(reading.grid_w),
            "solar_w": None if reading is None or reading.solar_w is None else round(reading.solar_w),
            "house_w": None if reading is None or reading.house_w is None else round(reading.house_w),
            "car_w": round(car_w),
        })


class CarDrawLog:
    """What the cars drew, report by report, so a meter reading is paired with the draw at the
    moment it was taken: surplus = export + the cars' draw *then*. Pairing it with the draw now
    double-counts a car that started after the reading (the seed's 30 s cadence made exactly
    that mistake); pairing a fresh reading with the last report before it undercounts a car
    that is ramping up (a 2 s meter sees the ramp before the TWC reports it, and the offer then
    cycled 16 -> 6 A every 10 s in the soak bench). So the draw at a reading's time is
    interpolated between the reports around it, and a reading newer than the last report
    waits for the next one."""

    def __init__(self, keep_s: float = 600.0) -> None:
        self._times: deque[float] = deque()
        self._amps: deque[float] = deque()
        self.keep_s = keep_s

    def add(self, at: float, amps: float) -> None:
        """The draw reported at `at` (when the units last reported, monotonic seconds)."""
        if self._times and at <= self._times[-1]:
            if at == self._times[-1]:
                self._amps[-1] = amps   # the same report, seen again
            return
        self._times.append(at)
        self._amps.append(amps)
        while self._times and at - self._times[0] > self.keep_s:
            self._times.popleft()
            self._amps.popleft()

    def around(self, when: float) -> float | None:
        """The draw at `when`, interpolated between the reports before and after it; None
        while no report at or after `when` has come (the draw then is not known yet)."""
        index = bisect.bisect_left(self._times, when)
        if index == len(self._times):
            return None
        t1, a1 = self._times[index], self._amps[index]
        if index == 0 or t1 == when:
            return a1
        t0, a0 = self._times[index - 1], self._amps[index - 1]
        return a0 + (a1 - a0) * (when - t0) / (t1 - t0)


class GreenService:
    """Green tracking as the site runs it: the tracker, the car-draw log that pairs each
    reading with the draw at its time, and the chart's history. Readings are handed in."""

    def __init__(self, params: GreenParams) -> None:
        self.tracker = GreenTracker(params)
        self.history = _History()
        self.car_draw = CarDrawLog()
        self.reading: MeterReading | None = None
        self._recent: deque[MeterReading] = deque(maxlen=8)   # the last readings, by time
        self._car_w = 0.0
        self._watts_per_amp = params.watts_per_amp
        self._stale_logged = False
        self._gap_limit: float | None = None
        self._gap_since = 0.0

    def decide(self, now: float, now_wall: float, readings: SiteReadings, car_amps: float,
               min_amps: float, watts_per_amp: float | None,
               car_reported_at: float | None = None,
               pricing: Pricing | None = None,
               car_limit_amps: float | None = None, mode: str | None = None) -> GreenDecision:
        """`car_amps`: what the units last reported drawing, at `car_reported_at` (now if
        not given); `pricing`: the tariff now (the `cheapest` flavour uses it);
        `car_limit_amps`: the limit in force on the charging units (for the draw gap);
        `mode`: the page's Eco-solar / Eco-cheapest choice, if any."""
        self._measure_gap(now, car_amps, car_limit_amps)
        self.reading = readings.meter
        self.car_draw.add(now if car_reported_at is None else car_reported_at, car_amps)
        reading, car_then = self._paired(now, readings.meter, car_amps)
        decision = self.tracker.update(now, reading, car_then, min_amps, watts_per_amp, pricing,
                                       mode)
        self.note_car(car_amps, watts_per_amp or self.tracker.params.watts_per_amp)
        self.history.add(now_wall, reading if reading and decision.amps is not None else None,
                         self._car_w)
        # Before the first attempt has finished there is nothing to report yet.
        stale = decision.amps is None and readings.meter_attempted
        if stale and not self._stale_logged:
            log.error("Green tracking offers 0 A: %s%s", decision.reason,
                      f" ({readings.meter_error})" if readings.meter_error else "")
        elif not stale and self._stale_logged:
            log.info("Green tracking has valid readings again")
        self._stale_logged = stale
        return decision

    def note_car(self, car_amps: float, watts_per_amp: float) -> None:
        """The cars' draw now, for the status, also while green tracking is not in use."""
        self._watts_per_amp = watts_per_amp
        self._car_w = car_amps * watts_per_amp

    def _measure_gap(self, now: float, car_amps: float, limit_amps: float | None) -> None:
        """The car's own margin below its limit, once the limit has stood DRAW_SETTLE_S (a
        ramping car is not a margin); an average, as reports are noisy."""
        if limit_amps is None or limit_amps != self._gap_limit:
            self._gap_limit, self._gap_since = limit_amps, now
            return
        gap = limit_amps - car_amps
        if car_amps >= 1.0 and now - self._gap_since >= DRAW_SETTLE_S and 0 <= gap <= 1.5:
            tracker = self.tracker
            tracker.draw_gap_a += DRAW_GAP_WEIGHT * (gap - tracker.draw_gap_a)

    def _paired(self, now: float, reading: MeterReading | None,
                car_amps: float) -> tuple[MeterReading | None, float]:
        """The newest reading whose draw is known, with that draw. The meter and the units
        report about as often, so the newest reading usually waits for the units' next report
        while the one before it is paired."""
        if reading is None:
            return None, car_amps
        if not self._recent or self._recent[-1].at != reading.at:
            self._recent.append(reading)
        for candidate in reversed(self._recent):
            car_then = self.car_draw.around(candidate.at)
            if car_then is not None:
                return candidate, car_then
            if now - candidate.at >= PAIR_WAIT_S:
                break   # the units did not report since (none, or silent): the last report
        return reading, car_amps

    def status(self, reading: MeterReading | None = None) -> dict:
        """The figures of the last step, with `reading` (the meter's latest, shown even while
        green tracking is not in use) or the one the last step saw."""
        reading = reading or self.reading
        decision = self.tracker.last
        # Figures that belong together are measured together: the house is the meter's
        # consumption less what the cars drew when *that* reading was taken (interpolated
        # between their reports), never less than 0 from a timing mismatch.
        car_then = self.car_draw.around(reading.at) if reading else None
        car_then_w = self._car_w if car_then is None else car_then * self._watts_per_amp
        return {
            "grid_w": reading.grid_w if reading else None,
            "solar_w": reading.solar_w if reading else None,
            "house_w": (max(round(reading.house_w - car_then_w), 0)
                        if reading and reading.house_w is not None else None),
            "car_w": round(self._car_w),
            "car_at_reading_w": round(car_then_w) if reading else None,
            "available_amps": (round(self.tracker.available_amps, 2)
                               if self.tracker.available_amps is not None else None),
            "green_amps": decision.amps,
            "reason": decision.reason,
            "charging_allowed": self.tracker.on,
        }
