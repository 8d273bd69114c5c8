"""`python -m TWCManager.plan`: what the daemon would decide at a moment (decisions.md §6.1).

    python -m TWCManager.plan [--config F] --at ISO_TIME [--colour-today C]
        [--colour-tomorrow C|unknown] [--soc PCT] [--forecast-kwh X] [--json]

Colours not given come from the Tempo cache file ([tempo] cache_file), as the daemon knows them;
a time without a zone is Paris time. Exit status 0, or 2 for a usage or configuration error.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta

from ..config import ConfigError, find_and_load_config
from ..tariff.calendar import TempoCalendar
from ..tariff.setup import prices_from
from ..tariff.tempo import COLOURS, PARIS, tempo_day
from . import spec_from, whole_plan

UNKNOWN = "unknown"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m TWCManager.plan",
                                     description="The car's and the battery's plan at a moment.")
    parser.add_argument("--config", help="TOML configuration file")
    parser.add_argument("--at", required=True, help="ISO time, e.g. 2026-12-03T21:30 (Paris)")
    parser.add_argument("--colour-today", type=str.upper, choices=COLOURS)
    parser.add_argument("--colour-tomorrow", type=str.upper, choices=(*COLOURS, UNKNOWN.upper()))
    parser.add_argument("--soc", type=float, help="battery charge, %%")
    parser.add_argument("--forecast-kwh", type=float, help="the next peak day's forecast sun")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        at = datetime.fromisoformat(args.at)
    except ValueError:
        print(f"plan: --at {args.at!r} is not an ISO time such as 2026-12-03T21:30",
              file=sys.stderr)
        return 2
    at = at if at.tzinfo else at.replace(tzinfo=PARIS)
    try:
        cfg = find_and_load_config(args.config, {})
    except ConfigError as exc:
        print(f"plan: configuration error: {exc}", file=sys.stderr)
        return 2
    prices = prices_from(cfg)
    calendar = TempoCalendar(cfg.tempo.cache_file or None)
    calendar.load(at.date())
    colours = calendar.colours()
    today = tempo_day(at, prices)
    if args.colour_today:
        colours[today] = args.colour_today
    if args.colour_tomorrow == UNKNOWN.upper():
        colours.pop(today + timedelta(days=1), None)
    elif args.colour_tomorrow:
        colours[today + timedelta(days=1)] = args.colour_tomorrow
    plan = whole_plan(at, colours, prices, spec_from(cfg), soc_pct=args.soc,
                      forecast_kwh=args.forecast_kwh, green_mode=cfg.green.mode)
    print(json.dumps(plan, indent=1, ensure_ascii=False) if args.json else describe(plan))
    return 0


def describe(plan: dict) -> str:
    lines = [f"At {plan['at']}: {plan['period']}, {plan['colour'].lower()}"
             + ("" if plan["colour_known"] else " (assumed)")
             + f", {plan['price_eur_kwh']:.4f} €/kWh"]
    battery = plan["battery"]
    if battery:
        lines += [f"Inverter output priority:  {battery['output_priority']} — "
                  f"{battery['output_reason']}",
                  f"Inverter charger priority: {battery['charger_priority']} — "
                  f"{battery['charger_reason']}",
                  f"Battery target at the {battery['next_peak_day']} peak start: "
                  f"{battery['target_soc_pct']:.0f} % — {battery['target_reason']}"]
        lines += [f"Assumed: {text}" for text in battery["assumptions"]]
    lines.append("Car:")
    for window in plan["car"]:
        lines.append(f"  {window['start'][11:16]}–{window['end'][11:16]} {window['period']:8} "
                     f"{window['colour'].lower() + ('' if window['colour_known'] else '?'):6} "
                     f"{window['price_eur_kwh']:.4f} €/kWh  {window['car_uses']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
