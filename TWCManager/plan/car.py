"""The car's next 24 hours on Tempo, pure: each stretch of one period and one colour, its price,
and what the car does there in the configured green mode (decisions §6.2)."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from ..tariff.tempo import OFFPEAK, TempoPrices, colour_or_assumption, next_change, period, \
    tempo_day

HORIZON = timedelta(hours=24)


def car_windows(now: datetime, colours: dict[date, str], prices: TempoPrices, green_mode: str,
                horizon: timedelta = HORIZON) -> list[dict]:
    windows, start, end_of_plan = [], now, now + horizon
    while start < end_of_plan:
        end = min(next_change(start, prices), end_of_plan)
        which = period(start, prices)
        colour = colour_or_assumption(colours, tempo_day(start, prices))
        price = prices.price(colour.colour, which)
        if which == OFFPEAK:
            use, why = "grid", f"off-peak: the cheapest grid hours ({price:.4f} €/kWh)"
        elif green_mode == "cheapest":
            use, why = "sun first", (f"peak at {price:.4f} €/kWh: sun, riding through a cloud "
                                     "only when that costs less than the sun it keeps")
        else:
            use, why = "sun only", f"peak at {price:.4f} €/kWh: never bought to follow the sun"
        windows.append({"start": start.isoformat(timespec="minutes"),
                        "end": end.isoformat(timespec="minutes"), "period": which,
                        "colour": colour.colour, "colour_known": colour.known,
                        "price_eur_kwh": price, "car_uses": use, "reason": why})
        start = end
    return windows
