""""N kWh by HH:MM" (issue 12 point 2), pure: the sun first, then the cheapest grid hours.

The car charges from the sun as green tracking decides, all along; what the sun has not
delivered by then is bought in the cheapest 15-minute slots before the deadline, at the car's
full current, the latest of equal price first (so the sun has every chance before them). Without
prices, the slots are the last ones before the deadline (one block, as late as possible). The
energy delivered so far counts, whatever its source, so the plan shrinks as the sun charges.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

SLOT_S = 900
MAX_HORIZON = timedelta(days=2)


@dataclass(frozen=True)
class GoalSlot:
    start: datetime
    end: datetime
    price_eur_kwh: float | None

    # Timestamps, not datetimes: two times of one zoneinfo zone compare (and subtract) by
    # their wall clocks, an hour off on daylight-saving nights.
    def contains(self, when: datetime) -> bool:
        return self.start.timestamp() <= when.timestamp() < self.end.timestamp()

    @property
    def hours(self) -> float:
        return (self.end.timestamp() - self.start.timestamp()) / 3600


def slots_until(now: datetime, deadline: datetime) -> list[tuple[datetime, datetime]]:
    """15-minute slots on the quarter hours from now to the deadline (the first one short),
    counted in UTC so a daylight-saving night has its real length, shown in now's zone."""
    zone = now.tzinfo
    start, end_utc = now.astimezone(timezone.utc), deadline.astimezone(timezone.utc)
    end_utc = min(end_utc, start + MAX_HORIZON)
    slots = []
    while start < end_utc:
        quarter = (start.minute // 15 + 1) * 15
        end = min(start.replace(minute=0, second=0, microsecond=0)
                  + timedelta(minutes=quarter), end_utc)
        slots.append((start.astimezone(zone), end.astimezone(zone)))
        start = end
    return slots


def goal_slots(now: datetime, deadline: datetime, need_kwh: float, car_kw: float,
               price_at: Callable[[datetime], float | None]) -> tuple[list[GoalSlot], bool]:
    """The grid slots to charge in (in time order), and whether they are enough."""
    if need_kwh <= 0 or car_kw <= 0:
        return [], True
    candidates = [GoalSlot(start, end, price_at(start))
                  for start, end in slots_until(now, deadline)]
    # Cheapest first; equal prices (or none known): the latest first.
    order = sorted(candidates, key=lambda s: (s.price_eur_kwh if s.price_eur_kwh is not None
                                              else 0.0, -s.start.timestamp()))
    chosen, energy_kwh = [], 0.0
    for slot in order:
        if energy_kwh >= need_kwh:
            break
        chosen.append(slot)
        energy_kwh += car_kw * slot.hours
    return sorted(chosen, key=lambda s: s.start), energy_kwh >= need_kwh


def merged(slots: list[GoalSlot]) -> list[dict]:
    """Adjacent slots of one price as one window, for a person."""
    windows: list[dict] = []
    for slot in slots:
        if windows and windows[-1]["end"] == slot.start and \
                windows[-1]["price_eur_kwh"] == slot.price_eur_kwh:
            windows[-1]["end"] = slot.end
        else:
            windows.append({"start": slot.start, "end": slot.end,
                            "price_eur_kwh": slot.price_eur_kwh})
    return [{**w, "start": w["start"].isoformat(timespec="minutes"),
             "end": w["end"].isoformat(timespec="minutes")} for w in windows]


class GoalKeeper:
    """The goal in the site step: counts the energy the cars take, ends the goal when it is met
    or its deadline passes (a change to save), and re-plans the slots once a minute."""

    MAX_STEP_S = 5.0     # a stalled loop is not minutes of charging

    def __init__(self) -> None:
        self.slots: list[GoalSlot] = []
        self.enough = True
        self._plan_key: tuple | None = None
        self._last_now: float | None = None

    def step(self, settings, now: float, when: datetime, car_w: float, car_amps_max: float,
             watts_per_amp: float, price_at: Callable[[datetime], float | None]
             ) -> tuple[tuple[float, str] | None, list[str]]:
        """(amps and reason while a grid slot runs, else None; the settings changes)."""
        step_s = 0.0 if self._last_now is None else min(max(now - self._last_now, 0.0),
                                                         self.MAX_STEP_S)
        self._last_now = now
        if not settings.charge_goal_by_at_wall:
            self.slots, self._plan_key = [], None
            return None, []
        settings.charge_goal_done_kwh += car_w * step_s / 3.6e6
        goal, done = settings.charge_goal_kwh, settings.charge_goal_done_kwh
        deadline = datetime.fromtimestamp(settings.charge_goal_by_at_wall, when.tzinfo)
        ended = None
        if done >= goal:
            ended = f"charge goal reached: {goal:g} kWh"
        elif when.timestamp() >= settings.charge_goal_by_at_wall:
            ended = f"charge goal missed: {done:.1f} of {goal:g} kWh by {deadline:%H:%M}"
        if ended:
            clear_goal(settings)
            self.slots, self._plan_key = [], None
            return None, [ended]
        need = goal - done
        key = (int(when.timestamp() // 60), round(need, 1), settings.charge_goal_by_at_wall)
        if key != self._plan_key:
            self._plan_key = key
            car_kw = car_amps_max * watts_per_amp / 1000
            self.slots, self.enough = goal_slots(when, deadline, need, car_kw, price_at)
        slot = next((s for s in self.slots if s.contains(when)), None)
        if slot is None:
            return None, []
        price = "" if slot.price_eur_kwh is None else f" at {slot.price_eur_kwh:.4f} €/kWh"
        return (car_amps_max, f"charge goal: {need:.1f} kWh more by {deadline:%H:%M}, "
                              f"the cheapest grid slot{price}"), []

    def status(self, settings) -> dict | None:
        if not settings.charge_goal_by_at_wall:
            return None
        return {"kwh": settings.charge_goal_kwh,
                "by": settings.charge_goal_by_at_wall,
                "done_kwh": round(settings.charge_goal_done_kwh, 2),
                "need_kwh": round(max(settings.charge_goal_kwh
                                      - settings.charge_goal_done_kwh, 0.0), 2),
                "grid_windows": merged(self.slots), "enough": self.enough}


def clear_goal(settings) -> None:
    settings.charge_goal_kwh = settings.charge_goal_by_at_wall = 0.0
    settings.charge_goal_done_kwh = 0.0
