"""One plan for the car and the battery on Tempo (issue 12): `battery.py` (the PI30's priorities
and the overnight target), `car.py` (the car's windows and prices), `whole_plan` (both, as the
`plan` command prints and the daemon shows)."""
from __future__ import annotations

from datetime import date, datetime

from ..tariff.tempo import TempoPrices, price_at
from .battery import BatterySpec, plan_battery
from .car import car_windows


def spec_from(cfg) -> BatterySpec:
    """The battery as `[battery]` describes it."""
    b = cfg.battery
    return BatterySpec(capacity_kwh=b.capacity_kwh, min_soc_pct=b.min_soc_pct,
                       peak_load_kwh=b.peak_load_kwh, sbu_on_white=b.sbu_on_white,
                       normal_output_priority=b.normal_output_priority,
                       forecast_share=b.forecast_share)


def whole_plan(now: datetime, colours: dict[date, str], prices: TempoPrices, spec: BatterySpec,
               *, soc_pct: float | None, forecast_kwh: float | None, green_mode: str,
               with_battery: bool = True) -> dict:
    price, assumed, which = price_at(colours, now, prices)
    battery = plan_battery(now, colours, prices, spec, soc_pct, forecast_kwh) \
        if with_battery else None
    return {"at": now.isoformat(timespec="seconds"),
            "period": which, "colour": assumed.colour, "colour_known": assumed.known,
            "price_eur_kwh": price,
            "battery": battery.as_dict() if battery else None,
            "car": car_windows(now, colours, prices, green_mode)}
