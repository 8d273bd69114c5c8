"""Money bench, a year (issue 12 point 7): the PI30 battery on a Tempo season, three ways.

  plan    the daemon's battery plan (TWCManager.plan.battery.plan_battery, the code the daemon
          runs), re-planned every 15 min from the colours known then (tomorrow's from 11:00
          the day before, as RTE publishes it) and the next day's solar forecast (the true
          figure times a log-normal error, sigma 0.35, fixed seed); the inverter is set to what
          it says;
  sbu     the seed's manual setting: SBU all year, the charger on solar only;
  none    no automation: the factory default, utility first, the charger on solar only.

The inverter is the simulator's physics (TWCManager.sim.pi30.Pi30Model: 1.5 kW grid charger,
2.5 kW charger, the battery's back-to-grid reserve at 20 %); there is no export (an off-grid
inverter's PV beyond the load and a full battery is lost). The season is drawn by tempo.md §1's
rules (22 red weekdays November–March, not on public holidays, at most 5 in a row; 43 white,
never on Sunday; the rest blue) with a fixed seed, and checked with tariff.tempo.rule_problems.
PV: a 2 kWp roof on the inverter, daily yield from a seasonal curve times the weather (a fixed
seed), a bell from sunrise to sunset. Load (the part of the house on the inverter's output):
280 W at night, 450 W by day, a 1.2 kW evening peak, +30 % in winter.

Figures per battery size: euros per year, kWh bought at red peak, and grid kWh. A bench prints
figures and asserts nothing.

    .venv/bin/python bench/money_year.py        # about 1 min
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from TWCManager.plan.battery import BatterySpec, plan_battery  # noqa: E402
from TWCManager.sim.pi30 import Pi30Model  # noqa: E402
from TWCManager.tariff.tempo import (BLUE, PARIS, PEAK, RED, WHITE, TempoPrices,  # noqa: E402
                                     period, red_allowed, rule_problems, tempo_day)

SEASON_START = date(2025, 9, 1)
STEP_S = 900
PUBLISHED_HOUR = 11            # tomorrow's colour is known from then
FORECAST_SIGMA = 0.35
ROOF_KWP = 2.0
OUTPUTS = {"utility": 0, "solar": 1, "sbu": 2}
CHARGERS = {"utility": 0, "solar": 1, "solar-utility": 2, "solar-only": 3}


# ----------------------------------------------------------------------------- the season

def draw_season(seed: int = 2025) -> dict[date, str]:
    rng = random.Random(seed)
    days = [SEASON_START + timedelta(days=n) for n in range(365)]
    colours = {day: BLUE for day in days}
    reds = 0
    candidates = [d for d in days if red_allowed(d)]
    # Reds cluster in the cold months: weight December–February.
    weights = [3.0 if d.month in (12, 1, 2) else 1.0 for d in candidates]
    while reds < 22:
        day = rng.choices(candidates, weights)[0]
        if colours[day] == RED:
            continue
        colours[day] = RED
        if rule_problems({d: c for d, c in colours.items() if c == RED}):
            colours[day] = BLUE
            continue
        reds += 1
    whites = 0
    others = [d for d in days if colours[d] == BLUE and d.weekday() != 6]
    while whites < 43:
        day = rng.choice(others)
        if colours[day] == BLUE:
            colours[day], whites = WHITE, whites + 1
    problems = rule_problems(colours)
    if problems:
        raise SystemExit(f"drawn season breaks the rules: {problems[:3]}")
    return colours


# ----------------------------------------------------------------------------- sun and load

def daily_pv_kwh(day: date, rng: random.Random) -> float:
    # Clear-day yield of a kWp in France: ~1.2 kWh in December, ~6 in June.
    season = math.cos(2 * math.pi * (day.timetuple().tm_yday - 172) / 365)
    clear = ROOF_KWP * (3.6 + 2.4 * season)
    return clear * rng.choice((1.0, 0.9, 0.75, 0.5, 0.3, 0.15))


def pv_w(day_kwh: float, day: date, hour: float) -> float:
    season = math.cos(2 * math.pi * (day.timetuple().tm_yday - 172) / 365)
    half = 4.3 + 3.7 * (season + 1) / 2           # half a day length: 4.3 h .. 8 h
    x = (hour - (13.5 - half)) / (2 * half)
    if not 0 < x < 1:
        return 0.0
    # The bell's integral over the day is 2 half / pi hours x its peak.
    return day_kwh * 1000 * math.sin(math.pi * x) * math.pi / (4 * half)


def load_w(day: date, hour: float) -> float:
    winter = 1.3 if day.month in (11, 12, 1, 2, 3) else 1.0
    base = 280.0 if hour < 7 or hour >= 23 else 450.0
    return winter * (base + (1200.0 if 18 <= hour < 21 else 0.0))


# ----------------------------------------------------------------------------- a year

def run_year(colours: dict[date, str], controller: str, capacity_kwh: float,
             prices: TempoPrices, seed: int = 7) -> dict:
    weather, errors = random.Random(seed), random.Random(seed + 1)
    days = sorted(colours)
    pv_kwh = {d: daily_pv_kwh(d, weather) for d in days}
    forecast = {d: kwh * math.exp(errors.gauss(0, FORECAST_SIGMA)) for d, kwh in pv_kwh.items()}
    model = Pi30Model(capacity_wh=capacity_kwh * 1000, soc_pct=50.0)
    spec = BatterySpec(capacity_kwh=capacity_kwh, min_soc_pct=model.back_to_grid_soc_pct,
                       peak_load_kwh=9.0)
    if controller == "sbu":
        model.output_priority, model.charger_priority = 2, 3
    elif controller == "none":
        model.output_priority, model.charger_priority = 0, 3
    eur = red_peak_kwh = grid_kwh = 0.0
    start = datetime.combine(days[0], datetime.min.time(), PARIS) + timedelta(hours=6)
    end = datetime.combine(days[-1], datetime.min.time(), PARIS) + timedelta(days=1, hours=6)
    now = start
    while now < end:
        local = now.astimezone(PARIS)
        hour = local.hour + local.minute / 60
        if controller == "plan":
            known = {d: c for d, c in colours.items()
                     if d <= local.date() or (d == local.date() + timedelta(days=1)
                                              and local.hour >= PUBLISHED_HOUR)}
            nxt = tempo_day(now, prices) + timedelta(days=1)
            peak_day = nxt if period(now, prices) != PEAK else tempo_day(now, prices)
            plan = plan_battery(now, known, prices, spec, model.soc_pct,
                                forecast.get(peak_day))
            model.output_priority = OUTPUTS[plan.output_priority]
            model.charger_priority = CHARGERS[plan.charger_priority]
        day = local.date()
        model.pv_w = lambda t, k=pv_kwh.get(day, 0.0), d=day, h=hour: pv_w(k, d, h)
        model.load_w = lambda t, d=day, h=hour: load_w(d, h)
        model.step(STEP_S)
        kwh = model.flows["grid"] * STEP_S / 3.6e6
        colour = colours.get(tempo_day(now, prices), BLUE)
        which = period(now, prices)
        eur += kwh * prices.price(colour, which)
        grid_kwh += kwh
        if colour == RED and which == PEAK:
            red_peak_kwh += kwh
        now += timedelta(seconds=STEP_S)
    return {"eur": eur, "red_peak_kwh": red_peak_kwh, "grid_kwh": grid_kwh}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5,7.5,10", help="battery sizes, kWh")
    args = parser.parse_args(argv)
    started = time.monotonic()
    prices = TempoPrices()
    colours = draw_season()
    counts = {c: sum(1 for v in colours.values() if v == c) for c in (BLUE, WHITE, RED)}
    print(f"season from {SEASON_START}: {counts[RED]} red, {counts[WHITE]} white, "
          f"{counts[BLUE]} blue (tempo.md rules checked); {ROOF_KWP:g} kWp on the inverter; "
          f"prices of 1 August 2026\n")
    print(f"{'battery':>8} {'controller':>10} {'EUR/year':>9} {'red peak kWh':>13} "
          f"{'grid kWh':>9}")
    for size in (float(s) for s in args.sizes.split(",")):
        rows = {name: run_year(colours, name, size, prices) for name in ("plan", "sbu", "none")}
        for name, r in rows.items():
            print(f"{size:7g}k {name:>10} {r['eur']:9.2f} {r['red_peak_kwh']:13.1f} "
                  f"{r['grid_kwh']:9.0f}")
        plan, sbu, none = rows["plan"], rows["sbu"], rows["none"]
        print(f"{'':8} plan saves {none['eur'] - plan['eur']:.2f} EUR/year on no automation, "
              f"{sbu['eur'] - plan['eur']:.2f} on the seed's SBU; red-peak kWh "
              f"{plan['red_peak_kwh']:.1f} vs {sbu['red_peak_kwh']:.1f} (SBU)\n")
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
