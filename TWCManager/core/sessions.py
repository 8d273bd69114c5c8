"""Each charger's session energy: what its car has taken since it was plugged in, integrated
from the amps each unit reports and the watts an amp carries (the TWC's own kWh counter counts
whole kWh only). A unit back in the ready state (no car) ends its session; the next car starts
a new one. Pure: the site step hands in the units and the time."""
from __future__ import annotations

from typing import Sequence

from ..twc.messages import STATE_READY
from ..twc.slave import SlaveTWC

MAX_STEP_S = 5.0      # a stalled loop is not minutes of charging


class SessionMeter:
    def __init__(self) -> None:
        self.kwh: dict[str, float] = {}
        self.started_at: dict[str, float] = {}
        # Sessions that ended since the history took them: (charger id, start, end, kWh), in
        # wall seconds.
        self.ended: list[tuple[str, float, float, float]] = []
        self._last_now: float | None = None

    def step(self, now: float, units: Sequence[SlaveTWC], watts_per_amp: float,
             now_wall: float | None = None) -> None:
        step_s = 0.0 if self._last_now is None else min(max(now - self._last_now, 0.0),
                                                         MAX_STEP_S)
        self._last_now = now
        for unit in units:
            if unit.state == STATE_READY:
                kwh = self.kwh.pop(unit.id_hex, None)
                started = self.started_at.pop(unit.id_hex, None)
                if kwh and now_wall is not None and started is not None:
                    self.ended.append((unit.id_hex, started, now_wall, round(kwh, 3)))
                continue
            if unit.id_hex not in self.kwh and now_wall is not None:
                self.started_at[unit.id_hex] = now_wall
            self.kwh[unit.id_hex] = self.kwh.get(unit.id_hex, 0.0) + (
                unit.actual_amps * watts_per_amp * step_s / 3.6e6)

    def session_kwh(self, unit: SlaveTWC) -> float | None:
        """None while no car is plugged into the unit."""
        value = self.kwh.get(unit.id_hex)
        return None if value is None else round(value, 3)
