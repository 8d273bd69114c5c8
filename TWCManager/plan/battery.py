"""The battery's plan on Tempo (issue 12 point 3), pure: from the moment, the calendar, the prices,
the battery and the solar forecast, which output and charger priorities the PI30 should have,
the charge to reach by the end of off-peak, and why.

The rule, cheapest first:
- A red peak kWh costs ~0.73 € and a night kWh ~0.14–0.16 €: before a peak the battery should
  carry (red; white if `sbu_on_white`), the grid charges it at off-peak up to what that peak
  needs beyond the forecast sun, plus the cut-off reserve. Unknown colours are assumed as
  tempo.md §3 (red where it can be red), because that insurance is cheap; no forecast counts as
  no sun, for the same reason.
- During such a peak the output priority is SBU (battery before grid); during other peaks the
  configured normal priority (SBU by default: the sun the battery stored is used, not lost);
  at off-peak utility (the grid is cheap, the battery waits for the peak).
- The grid never charges the battery at peak: the charger priority is then solar-only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from ..tariff.tempo import (OFFPEAK, RED, WHITE, TempoPrices, colour_or_assumption, day_start,
                            period, tempo_day)

SBU, UTILITY, SOLAR_ONLY, SOLAR_UTILITY = "sbu", "utility", "solar-only", "solar-utility"


@dataclass(frozen=True)
class BatterySpec:
    capacity_kwh: float = 5.0
    min_soc_pct: float = 20.0           # SBU's back-to-grid reserve
    peak_load_kwh: float = 6.0          # what the inverter's load takes from 06:00 to 22:00
    sbu_on_white: bool = False
    # Peak hours the battery was not charged for: "sbu" uses the sun it stored (an inverter
    # that does not export loses it otherwise); "utility" keeps it for the next red day.
    normal_output_priority: str = "sbu"
    forecast_share: float = 0.8         # of tomorrow's forecast sun that reaches the load


@dataclass(frozen=True)
class BatteryPlan:
    output_priority: str
    output_reason: str
    charger_priority: str
    charger_reason: str
    target_soc_pct: float
    target_reason: str
    next_peak_day: date
    next_peak_colour: str
    next_peak_colour_known: bool
    assumptions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"output_priority": self.output_priority, "output_reason": self.output_reason,
                "charger_priority": self.charger_priority, "charger_reason": self.charger_reason,
                "target_soc_pct": round(self.target_soc_pct, 1),
                "target_reason": self.target_reason,
                "next_peak_day": self.next_peak_day.isoformat(),
                "next_peak_colour": self.next_peak_colour,
                "next_peak_colour_known": self.next_peak_colour_known,
                "assumptions": list(self.assumptions)}


def battery_carries(colour: str, spec: BatterySpec) -> bool:
    return colour == RED or (colour == WHITE and spec.sbu_on_white)


def next_peak_day(now: datetime, prices: TempoPrices) -> date:
    """The Tempo day whose peak starts next: the night's charge is for it."""
    day = tempo_day(now, prices)
    return day if now < _peak_start(day, prices) else day + timedelta(days=1)


def _peak_start(day: date, prices: TempoPrices) -> datetime:
    # The first peak minute of a Tempo day: the off-peak window's end on that day.
    start = day_start(day, prices)
    minutes = prices.offpeak_end_min - prices.day_start_min
    return start + timedelta(minutes=minutes % (24 * 60))


def target_soc(colour: str, forecast_kwh: float | None, spec: BatterySpec) -> tuple[float, str]:
    """The charge to have when that day's peak starts."""
    if not battery_carries(colour, spec):
        return spec.min_soc_pct, f"{colour.lower()} peak: the grid is cheap enough, no night charge"
    sun_kwh = 0.0 if forecast_kwh is None else max(forecast_kwh, 0.0) * spec.forecast_share
    need_kwh = max(spec.peak_load_kwh - sun_kwh, 0.0)
    target = min(100.0, spec.min_soc_pct + 100.0 * need_kwh / spec.capacity_kwh)
    sun = "no forecast, counting no sun" if forecast_kwh is None else (
        f"{sun_kwh:.1f} kWh of the {forecast_kwh:.1f} kWh forecast reach the load")
    return target, (f"{colour.lower()} peak needs {need_kwh:.1f} kWh from the battery "
                    f"({spec.peak_load_kwh:.1f} kWh load, {sun}) above the "
                    f"{spec.min_soc_pct:.0f} % reserve")


def plan_battery(now: datetime, colours: dict[date, str], prices: TempoPrices,
                 spec: BatterySpec, soc_pct: float | None,
                 forecast_kwh: float | None) -> BatteryPlan:
    assumptions = []
    which = period(now, prices)
    peak_day = next_peak_day(now, prices)
    peak = colour_or_assumption(colours, peak_day)
    if not peak.known:
        assumptions.append(f"{peak_day.isoformat()}: {peak.reason}")
    if forecast_kwh is None:
        assumptions.append("no solar forecast: counting no sun (the careful default)")
    target, target_reason = target_soc(peak.colour, forecast_kwh, spec)

    if which == OFFPEAK:
        output, output_reason = UTILITY, "off-peak: the grid is cheap, the battery waits for the peak"
        if soc_pct is None:
            charger = SOLAR_ONLY
            charger_reason = "battery charge unknown: not buying grid energy blind"
        elif soc_pct < target:
            charger = SOLAR_UTILITY
            charger_reason = (f"off-peak, battery {soc_pct:.0f} % below the {target:.0f} % "
                              f"target: the grid charges it")
        else:
            charger = SOLAR_ONLY
            charger_reason = f"battery {soc_pct:.0f} % at or above the {target:.0f} % target"
    else:
        charger, charger_reason = SOLAR_ONLY, "peak: the grid never charges the battery"
        today = colour_or_assumption(colours, tempo_day(now, prices))
        if battery_carries(today.colour, spec):
            output = SBU
            output_reason = (f"{today.colour.lower()} peak"
                             + ("" if today.known else f" ({today.reason})")
                             + ": the battery carries the load, no grid while it can")
        else:
            output = spec.normal_output_priority
            output_reason = (f"{today.colour.lower()} peak: the battery gives back the sun it "
                             "stored" if output == SBU else
                             f"{today.colour.lower()} peak: the battery is kept for a red day")
    return BatteryPlan(output, output_reason, charger, charger_reason, target, target_reason,
                       peak_day, peak.colour, peak.known, assumptions)


def fallback_problem(plan_output: str, status: dict | None, spec: BatterySpec) -> str | None:
    """In SBU the inverter should take the load from the battery; a mode letter L (line) says
    the grid carries it. Expected at or below the back-to-grid point, a problem above it."""
    if plan_output != SBU or not status or status.get("output_priority") != SBU \
            or status.get("mode") != "L":
        return None
    soc, volts = status.get("battery_soc_pct"), status.get("battery_v")
    back_v = status.get("battery_recharge_v")
    low = (soc is not None and soc <= spec.min_soc_pct) or (
        volts is not None and back_v is not None and volts <= back_v)
    where = f"battery {soc} %, {volts} V" + (f" (back to grid at {back_v} V)" if back_v else "")
    if low:
        return f"SBU is on the grid: the battery is at its back-to-grid point ({where})"
    return f"SBU fell back to the grid although the battery can carry the load ({where})"
