"""The home's energy totals, pure: each meter reading's power integrated over the time since the
one before it, split the way the money is (issue 12's saving, issue 13's totals): sun into the
car, grid into the car, exported, bought (per price label), and the sun produced.

The car's share of the sun is what the surplus with the car covers: the surplus is
grid + car (+ = export), so sun into the car = clamp(grid + car, 0, car). Totals only grow; the
store (`TWCManager.history`) keeps them across restarts and per day.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MAX_GAP_S = 120.0     # a longer gap between two readings is a hole, not a long steady power

TOTALS = ("solar_kwh", "import_kwh", "export_kwh", "car_kwh", "car_sun_kwh", "car_grid_kwh")


@dataclass
class EnergyBook:
    totals: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TOTALS, 0.0))
    # Bought per price label ("import_blue_peak_kwh" …), and what it cost.
    bought: dict[str, float] = field(default_factory=dict)
    cost_eur: float = 0.0
    _last_at: float | None = None

    def add(self, at_wall: float, grid_w: float, solar_w: float | None, car_w: float,
            price_label: str | None = None, price_eur_kwh: float | None = None) -> dict:
        """Book the reading taken at `at_wall` (unix s); returns the kWh added, by name."""
        previous, self._last_at = self._last_at, at_wall
        if previous is None or not 0 < at_wall - previous <= MAX_GAP_S:
            return {}
        hours = (at_wall - previous) / 3600
        car_w = max(car_w, 0.0)
        sun_to_car = min(max(grid_w + car_w, 0.0), car_w)
        added = {
            "solar_kwh": max(solar_w or 0.0, 0.0) * hours / 1000,
            "import_kwh": max(-grid_w, 0.0) * hours / 1000,
            "export_kwh": max(grid_w, 0.0) * hours / 1000,
            "car_kwh": car_w * hours / 1000,
            "car_sun_kwh": sun_to_car * hours / 1000,
            "car_grid_kwh": (car_w - sun_to_car) * hours / 1000,
        }
        for name, kwh in added.items():
            self.totals[name] += kwh
        if price_label and added["import_kwh"]:
            key = f"import_{price_label}_kwh"
            self.bought[key] = self.bought.get(key, 0.0) + added["import_kwh"]
            added[key] = added["import_kwh"]
            if price_eur_kwh is not None:
                self.cost_eur += added["import_kwh"] * price_eur_kwh
        return added

    def snapshot(self) -> dict:
        return {**{k: round(v, 4) for k, v in self.totals.items()},
                **{k: round(v, 4) for k, v in self.bought.items()},
                "import_cost_eur": round(self.cost_eur, 4)}
