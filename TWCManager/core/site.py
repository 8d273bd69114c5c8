"""The site core: one pure decision step for the whole home per tick.

In: the latest readings (`SiteReadings`: meter, optionally battery, each with its time), the
settings, a tz-aware wall time and a tariff. Out (`SiteDecision`): the pool of amps with its
source and reason, and the settings the wall-clock rules changed (charge-now expiry, the
daily resume of green tracking). Each unit's offer with its reason comes from `offer()`, asked
by the RS-485 engine at the unit's heartbeat (the Gen2 holds count from the moment an offer is
sent). Later issues add inverter commands to the decision.

No I/O and no clock reads: the daemon (`daemon.py`) and `python -m TWCManager.replay` run this
same code, each with its own meter and clock behind `core.interfaces`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Protocol, Sequence

from ..config import Config
from . import policy
from .goal import GoalKeeper
from .sessions import SessionMeter
from .green import GreenDecision, GreenParams, GreenService
from .interfaces import NoTariff, Pricing, SiteReadings, Tariff
from .settings import Settings
from ..twc.slave import SlaveTWC

log = logging.getLogger("TWCManager.site")


class GreenPolicy(Protocol):
    """Turns the readings into amps for the cars; GreenService by default (tests may pin it)."""

    def decide(self, now: float, now_wall: float, readings: SiteReadings, car_amps: float,
               min_amps: float, watts_per_amp: float | None,
               car_reported_at: float | None = None,
               pricing: Pricing | None = None,
               car_limit_amps: float | None = None,
               mode: str | None = None) -> GreenDecision: ...


@dataclass(frozen=True)
class SiteDecision:
    pool: policy.PoolDecision
    changes: tuple[str, ...] = ()   # settings changed by the wall-clock rules: save them


def watts_per_amp(units: Sequence[SlaveTWC]) -> float | None:
    """Watts one amp carries, from the phase volts the TWCs report (FD EB): live phases
    summed (3 × 230 = 690 on a 3-phase EU unit), averaged over units (decisions §4.15)."""
    sums = [sum(v for v in u.volts if v >= 100) for u in units if u.volts]
    sums = [total for total in sums if total > 0]
    return sum(sums) / len(sums) if sums else None


def limits_from(cfg: Config) -> policy.Limits:
    return policy.Limits(
        wiring_max_amps_all_twcs=float(cfg.twc.wiring_max_amps_all_twcs),
        wiring_max_amps_per_twc=float(cfg.twc.wiring_max_amps_per_twc),
        min_amps_per_twc=float(cfg.twc.min_amps_per_twc))


def site_from(cfg: Config, settings: Settings, holds: policy.Holds = policy.Holds(),
              tariff: Tariff | None = None) -> "Site":
    """The site core as the configuration describes it (the daemon and the replay)."""
    return Site(settings, limits_from(cfg), green_params=GreenParams.from_config(cfg.green),
                holds=holds, green_hours=(int(cfg.green.start_hour), int(cfg.green.end_hour)),
                tariff=tariff)


class Site:
    def __init__(self, settings: Settings, limits: policy.Limits, *,
                 green_params: GreenParams = GreenParams(),
                 green: GreenPolicy | None = None,
                 holds: policy.Holds = policy.Holds(),
                 green_hours: tuple[int, int] = (6, 20),
                 tariff: Tariff | None = None) -> None:
        self.settings = settings
        self.limits = limits
        self.holds = holds
        self.green_hours = green_hours
        self.tariff = tariff or NoTariff()
        self.green_service = GreenService(green_params)
        self.green: GreenPolicy = green or self.green_service
        self.goal = GoalKeeper()
        self.sessions = SessionMeter()
        self.last_offers: dict[str, policy.Offer] = {}
        self.car_w = 0.0      # what the cars drew at the last step (W), for the energy book
        self.pool = policy.PoolDecision(0.0, policy.NON_SCHEDULED, "starting")
        self._policy_clock = policy.Clock()
        self._pool_log_key: tuple | None = None

    def step(self, now: float, when: datetime, readings: SiteReadings,
             units: Sequence[SlaveTWC]) -> SiteDecision:
        """One decision for the whole home. `now`: monotonic seconds; `when`: local time."""
        changes = self._policy_clock.tick(self.settings, when)
        wpa = watts_per_amp(units) or self.green_service.tracker.params.watts_per_amp
        # The sum is as of the units' latest report (their heartbeat replies).
        car_amps = sum(u.actual_amps for u in units if u.is_charging)
        self.car_w = car_amps * wpa
        self.sessions.step(now, units, wpa, when.timestamp())
        self.green_service.note_car(car_amps, wpa)
        goal, goal_changes = self.goal.step(self.settings, now, when, self.car_w,
                                            self.limits.wiring_max_amps_all_twcs, wpa,
                                            self.tariff.import_eur_kwh)
        changes += goal_changes
        for change in changes:
            log.info("%s", change.capitalize())
        green, green_reason = None, "no valid energy reading"
        if self.settings.non_scheduled_amps == -1:
            car_reported_at = max((u.last_heard_at for u in units), default=now)
            floors = [u.min_amps_supported for u in units] or [6]
            min_amps = max(self.limits.min_amps_per_twc, max(floors))
            decision = self.green.decide(now, when.timestamp(), readings, car_amps, min_amps,
                                         watts_per_amp(units), car_reported_at,
                                         self.tariff.pricing(when),
                                         sum(u.reported_limit_amps for u in units
                                             if u.is_charging),
                                         self.settings.green_mode or None)
            green, green_reason = decision.amps, decision.reason
        pool = policy.choose_pool(self.settings, when, green, self.limits, self.green_hours,
                                  green_reason, goal)
        # One line when the source or the whole amps change, not at every countdown second.
        key = (pool.source, round(pool.amps))
        if key != self._pool_log_key:
            self._pool_log_key = key
            log.info("Pool %.2f A: %s", pool.amps, pool.reason)
        self.pool = pool
        return SiteDecision(pool, tuple(changes))

    def offer(self, unit: SlaveTWC, others: list[SlaveTWC], now: float,
              reserved_amps: float = 0.0) -> policy.Offer:
        """The whole amps to offer `unit` now under the last pool, the holds and the wiring."""
        offer = policy.offer_for(unit, others, self.pool.amps, self.limits, self.holds, now,
                                 reserved_amps, follow_sun=self.pool.source == policy.GREEN)
        self.last_offers[unit.id_hex] = offer      # its reason is the page's "why"
        return offer

    def green_active(self, when: datetime) -> bool:
        """Is green tracking what sets the pool now (the meter may then be read faster)?"""
        return self.pool.source == policy.GREEN and policy.in_green_hours(self.green_hours, when)


class SiteDriver:
    """The site as the RS-485 engine's planner: each plan is one site step with the latest
    readings and the wall time; settings the step changed are handed to `on_changes` (the
    daemon saves them). Used as is by the daemon, the replay and the tests."""

    def __init__(self, site: Site, wall: Callable[[], datetime],
                 readings: Callable[[], SiteReadings] = SiteReadings,
                 on_changes: Callable[[str], None] = lambda reason: None) -> None:
        self.site = site
        self._wall = wall
        self._readings = readings
        self._on_changes = on_changes

    def plan(self, now: float, units: list[SlaveTWC]) -> None:
        decision = self.site.step(now, self._wall(), self._readings(), units)
        if decision.changes:
            self._on_changes(", ".join(decision.changes))

    def offer(self, unit: SlaveTWC, others: list[SlaveTWC], now: float,
              reserved_amps: float) -> policy.Offer:
        return self.site.offer(unit, others, now, reserved_amps)
