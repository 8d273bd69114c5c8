"""Charging policy: which pool of amps applies now, and how much each slave is offered.

Pure code over settings, slave state and time (original-program.md §6, with the
fixes of decisions.md §4). `now` is monotonic seconds; wall-clock rules take a
local `datetime`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from .settings import Settings
from ..twc.slave import WAITING_STATES, SlaveTWC

# Pool sources, highest precedence first (decisions.md §3).
CHARGE_NOW = "charge_now"
SCHEDULED = "scheduled"
NON_SCHEDULED = "non_scheduled"
GREEN = "green"
GOAL = "goal"           # "N kWh by HH:MM": a cheapest grid slot (core.goal), after charge now

# Cars with a draw below this are told to keep the minimum rather than stop (§6.5).
STOP_ALLOWED_AMPS = 4.0
# "Car stuck" when the gap between offer and draw exceeds this (§6.5 condition B).
STUCK_GAP_AMPS = 2.0
STUCK_MIN_ACTUAL_AMPS = 2.0


@dataclass(frozen=True)
class Limits:
    wiring_max_amps_all_twcs: float
    wiring_max_amps_per_twc: float
    min_amps_per_twc: float


@dataclass(frozen=True)
class Holds:
    """Hold times of the original (§6.5); injectable so tests need not wait them out."""
    start_stop_s: float = 60.0     # no start within this of a stop, no stop within this of a start
    lowering_s: float = 5.0        # limit lowered at most this often; also holds a spike
    spike_s: float = 5.0           # wait before raising to the spike value
    stuck_s: float = 10.0          # a car unchanged this long at the spike is "stuck"
    idle_give_up_s: float = 90.0   # offered power unused this long: stop offering (§4.9)


@dataclass(frozen=True)
class PoolDecision:
    amps: float
    source: str
    reason: str


@dataclass(frozen=True)
class Offer:
    amps: int
    reason: str


def sunday_based_weekday(when: datetime) -> int:
    """0 = Sunday … 6 = Saturday, the PHP page's bit order (decisions.md §4.1)."""
    return (when.weekday() + 1) % 7


def minute_of_day(when: datetime) -> int:
    return when.hour * 60 + when.minute


def schedule_active(settings: Settings, when: datetime) -> bool:
    """The original's window test (§6.3 step 1), on minutes and Sunday-based days."""
    start, end = settings.scheduled_start_min, settings.scheduled_end_min
    days = settings.scheduled_days_bitmap
    if settings.scheduled_amps <= 0 or start < 0 or end < 0 or days <= 0 or start == end:
        return False
    now_min = minute_of_day(when)
    today = sunday_based_weekday(when)
    yesterday = (today - 1) % 7
    if start > end:  # crosses midnight: the part after midnight belongs to yesterday's bit
        return ((now_min >= start and bool(days >> today & 1))
                or (now_min < end and bool(days >> yesterday & 1)))
    return start <= now_min < end and bool(days >> today & 1)


def charge_now_active(settings: Settings, now_wall_s: float) -> bool:
    return settings.charge_now_amps > 0 and settings.charge_now_until_at_wall > now_wall_s


def in_green_hours(green_hours: tuple[int, int], when: datetime) -> bool:
    start_hour, end_hour = green_hours
    return start_hour <= when.hour < end_hour


def choose_pool(settings: Settings, when: datetime, green_amps: float | None,
                limits: Limits, green_hours: tuple[int, int] = (6, 20),
                green_reason: str = "green energy",
                goal: tuple[float, str] | None = None) -> PoolDecision:
    """Pick the amps to divide among all slaves (§6.3 step 3), clamped to the
    wiring and never negative (decisions.md §4.13). `goal`: the amps and reason of a charge
    goal's grid slot now, if one runs."""
    if charge_now_active(settings, when.timestamp()):
        decision = PoolDecision(settings.charge_now_amps, CHARGE_NOW, "charge now")
    elif goal is not None:
        decision = PoolDecision(goal[0], GOAL, goal[1])
    elif schedule_active(settings, when):
        decision = PoolDecision(float(settings.scheduled_amps), SCHEDULED, "scheduled charging")
    elif settings.non_scheduled_amps > -1:
        reason = ("do not charge" if settings.non_scheduled_amps == 0
                  else "non-scheduled amps")
        decision = PoolDecision(float(settings.non_scheduled_amps), NON_SCHEDULED, reason)
    else:
        if not in_green_hours(green_hours, when):
            start_hour, end_hour = green_hours
            decision = PoolDecision(0.0, GREEN, f"outside green hours {start_hour}-{end_hour}")
        elif green_amps is None:
            decision = PoolDecision(0.0, GREEN, green_reason or "no valid energy reading")
        else:
            decision = PoolDecision(green_amps, GREEN, green_reason)
    amps = min(max(decision.amps, 0.0), limits.wiring_max_amps_all_twcs)
    if amps != decision.amps:
        decision = PoolDecision(amps, decision.source, decision.reason)
    return decision


class Clock:
    """Wall-clock rules that run every tick, with or without slaves (decisions.md §4.7):
    charge-now expiry and the daily resume of green tracking."""

    def __init__(self) -> None:
        self._last_seen: datetime | None = None

    def tick(self, settings: Settings, when: datetime) -> list[str]:
        """Apply due rules to `settings`; returns what changed (empty: nothing to save)."""
        changes = []
        if settings.charge_now_until_at_wall and settings.charge_now_until_at_wall <= when.timestamp():
            settings.charge_now_amps = 0.0
            settings.charge_now_until_at_wall = 0.0
            changes.append("charge now expired")
        if (settings.resume_green_min >= 0 and settings.non_scheduled_amps != -1
                and self._minute_reached(settings.resume_green_min, when)):
            settings.non_scheduled_amps = -1
            changes.append("resumed green tracking")
        self._last_seen = when
        return changes

    def _minute_reached(self, target_min: int, when: datetime) -> bool:
        # Fires when the target minute is reached or was passed since the last tick,
        # so a busy or suspended minute is not missed (the original tested float
        # equality during one heartbeat, §10 item 15). Longer gaps than a day are
        # not replayed.
        now_min = minute_of_day(when)
        last = self._last_seen
        if last is None or when <= last or when - last >= timedelta(days=1):
            return now_min == target_min
        last_min = minute_of_day(last)
        if last.date() == when.date():
            return last_min < target_min <= now_min
        return target_min > last_min or target_min <= now_min


def offer_for(slave: SlaveTWC, others: list[SlaveTWC], pool_amps: float,
              limits: Limits, holds: Holds, now: float, reserved_amps: float = 0.0,
              follow_sun: bool = False) -> Offer:
    """The whole amps to offer `slave` now (§6.4–6.5), then the safety clamp.
    Also decides whether the slave has gone idle (its only side effect).
    `follow_sun`: the pool is green tracking's, see `_stop_held`."""
    slave.update_idle(now, holds.idle_give_up_s)
    desired, reason = _wanted(slave, others, pool_amps, limits, holds, now, follow_sun)
    return clamp_offer(slave, others, desired, reason, limits, reserved_amps)


def clamp_offer(slave: SlaveTWC, others: list[SlaveTWC], desired: float, reason: str,
                limits: Limits, reserved_amps: float = 0.0) -> Offer:
    """Safety invariant (decisions.md §4.8): the limits in force on all slaves together
    stay within wiring_max_amps_all_twcs, and no slave gets more than its own wiring or
    rating. Wins over every hold. What another unit has in force is the higher of its offer
    and its last report (`SlaveTWC.in_force_amps`). `reserved_amps`: limits that may still be
    in force on units that went silent (the master keeps them booked for a while)."""
    others_in_force = sum(other.in_force_amps for other in others) + reserved_amps
    cap = min(limits.wiring_max_amps_per_twc, slave.rated_amps,
              limits.wiring_max_amps_all_twcs - others_in_force)
    amps = int(desired)
    if amps > cap:
        amps = max(math.floor(cap), 0)
        reason = f"capped by wiring ({reason})"
    if 0 < amps < slave.min_amps_supported:
        # Offers under the unit's floor lock cars out until re-plugged (§6.6).
        amps, reason = 0, f"below {slave.min_amps_supported} A floor ({reason})"
    return Offer(max(amps, 0), reason)


def _cars_sharing(others: list[SlaveTWC], pool_amps: float, min_to_offer: float) -> int:
    """How many cars share the pool, this slave included (§6.4 step 5). Cars that
    draw count, as in the original; a plugged-in car asking for power counts too
    when the pool can feed it as well, so it gets its share (decisions §4.9)
    without starving a car that is already charging on a small pool."""
    cars = 1 + sum(1 for other in others if other.is_charging)
    for other in others:
        if (not other.is_charging and not other.idle and other.state in WAITING_STATES
                and pool_amps / (cars + 1) >= min_to_offer):
            cars += 1
    return cars


def _stop_held(slave: SlaveTWC, holds: Holds, now: float, follow_sun: bool) -> bool:
    """The original's "don't stop yet" rule (§6.5 step 9): no stop within 60 s of the
    offer or the draw changing, nor while the car draws under 4 A. Its author's aim:
    never cut a car within a minute of starting it or while its draw still ramps up.

    Green tracking lowers the limit whenever a cloud passes, and under the original
    rule each of those changes re-armed the minute, so every cloud cost a minute at
    the car's minimum from the grid (bench/solar_day.py: two thirds of the car's grid
    energy on cloudy days). With `follow_sun` the minute runs from the start (offer
    0 -> on) and from the last significant *rise* of the draw instead: lowering the
    limit to follow the sun no longer re-arms it. Whether a cloud is worth riding
    through is then the green tracker's decision (ride_through_wh). Fixed pools keep
    the original rule exactly."""
    if slave.actual_amps < STOP_ALLOWED_AMPS:
        return True
    if follow_sun:
        return (now - slave.offer_started_at < holds.start_stop_s
                or now - slave.actual_rose_at < holds.start_stop_s)
    return (now - slave.offer_changed_at < holds.start_stop_s
            or now - slave.actual_changed_at < holds.start_stop_s)


def _stop_hold_reason(slave: SlaveTWC, holds: Holds, now: float, follow_sun: bool) -> str:
    if slave.actual_amps < STOP_ALLOWED_AMPS:
        return f"stop held while the car draws under {STOP_ALLOWED_AMPS:g} A (it may be starting)"
    since = (now - max(slave.offer_started_at, slave.actual_rose_at) if follow_sun
             else now - max(slave.offer_changed_at, slave.actual_changed_at))
    return (f"stop held: {max(holds.start_stop_s - since, 0):.0f} s left at the minimum (no "
            "stop within a minute of a start or a rising draw)")


def _wanted(slave: SlaveTWC, others: list[SlaveTWC], pool_amps: float,
            limits: Limits, holds: Holds, now: float, follow_sun: bool) -> tuple[float, str]:
    offered = slave.offered_amps
    if slave.idle:
        return 0, "no car drew the power offered"

    min_to_offer = max(limits.min_amps_per_twc, slave.min_amps_supported)
    cars = _cars_sharing(others, pool_amps, min_to_offer)
    fair_amps = int(pool_amps / cars)
    # What the others draw, each counted up to its fair share: a car on its spike
    # (21 A for ~6 s) must not push its neighbour below the minimum, or the two take
    # turns spiking forever. Draws under 1 A are the units' idle offset (0.25 A),
    # not a car; the original subtracted them and offered 19 A of a 20 A pool.
    others_draw = sum(min(other.actual_amps, fair_amps) for other in others
                      if other.is_charging)
    desired = min(pool_amps - others_draw, fair_amps)
    since_offer = now - slave.offer_changed_at

    if desired < min_to_offer:
        # The original's "offer the bare minimum while the others shrink" branch
        # (pool / cars > minimum here) cannot happen once draws are capped at the
        # fair share: desired is then at least the fair share.
        desired, reason = 0, "pool below minimum"
        if offered > 0 and _stop_held(slave, holds, now, follow_sun):
            return min_to_offer, _stop_hold_reason(slave, holds, now, follow_sun)
        return desired, reason

    desired = float(int(desired))  # whole amps: fractions lock cars at ~5 A (§6.6)
    if offered == 0 and since_offer < holds.start_stop_s:
        return 0, (f"start held: {holds.start_stop_s - since_offer:.0f} s left (no start "
                   "within a minute of a stop: the Gen2 relay)")

    spike = slave.spike_amps
    raising_below_spike = offered < desired < spike
    stuck = (STUCK_MIN_ACTUAL_AMPS < slave.actual_amps <= spike
             and offered - slave.actual_amps > STUCK_GAP_AMPS
             and now - slave.actual_changed_at > holds.stuck_s)
    if raising_below_spike or stuck:
        if offered == spike and since_offer > holds.stuck_s:
            return spike - 2, "car stuck at spike: offering 2 less"
        if since_offer > holds.spike_s:
            return spike, "spike to cancel the 6 A lock"
        return offered, "spike wait"
    if desired < offered and since_offer < holds.lowering_s:
        return offered, "lowering held"
    return desired, "pool share"
