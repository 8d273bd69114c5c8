"""Money bench (issue 12 point 7): each controller's saving in euros per day at Tempo's blue,
white and red prices, against a clairvoyant bound.

A day's saving, for the car (issue 12): the car gets what it misses tonight at off-peak (N), sun
not taken is exported at the feed-in price (E), a daytime grid kWh costs the peak price (D):

    saving € = sun into the car × (N − E) − daytime grid into the car × (D − N)

Days, house loads, car and meter: bench/solar_day.py's (two measured days, five cloudy ones, a
house with a heat pump and cooking; a 6–16 A three-phase car with a 3 s lag and ramps). Prices
(tempo.md §1, from 1 August 2026): blue 0.1654 / 0.1356, white 0.1921 / 0.1536, red 0.7295 /
0.1615, feed-in 0.04 EUR/kWh.

Controllers, all through the Gen2 holds of `policy.offer_for` (whole amps, 60 s start/stop):
  cheapest  ours, `[green] mode = "cheapest"` with the day's prices (the replay's hello tariff);
  solar     ours, `mode = "solar"`;
  round1    ours as round 1 left it (no mode);
  seed      LennyBo's algorithm (solar_day.SeedPolicy: the meter every 30 s, pool = export + draw);
  evcc      evcc's PV mode as peers.md §2.2 describes it: every 30 s, target = effective current
            + export / (V × phases), truncated; enable when target ≥ 6 A for 1 min (then 6 A),
            disable after 3 min below 6 A (held at 6 A meanwhile);
  openwb    openWB 2's PV mode as peers.md §2.3 describes it: every 10 s, aim for 115 W import,
            at most ±5 A a cycle; switch on after 30 s of export ≥ 1500 W × phases, off after
            60 s of import > 0 W (held at 6 A meanwhile).

Bound: dynamic programming over the green hours in 5 s slots, knowing the whole day: off, or on
at the best whole amps 6–16 for each slot (a change of amps while on is free), 60 s on and off
holds, no car lag; it maximises the saving itself. A bench prints figures and asserts nothing;
fixed seeds, deterministic.

    .venv/bin/python bench/money_day.py            # about 1 min on 2 cores
    .venv/bin/python bench/money_day.py --tradeoff # + euros against starts, about 4 min
    .venv/bin/python bench/money_day.py --days 2   # the first two days only
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import solar_day as sd  # noqa: E402
from TWCManager.core.interfaces import Pricing  # noqa: E402
from TWCManager.replay import CarSpec, Obs, ReplayEngine  # noqa: E402

EXPORT_EUR_KWH = 0.04
COLOURS = {"blue": (0.1654, 0.1356), "white": (0.1921, 0.1536), "red": (0.7295, 0.1615)}
CONTROLLERS = ("cheapest", "solar", "round1", "seed", "evcc", "openwb")
SLOT_S = 5
HOLD_SLOTS = 60 // SLOT_S
AIM_SHARE = 0.95


def pricing(colour: str) -> Pricing:
    day, night = COLOURS[colour]
    return Pricing(day, night, EXPORT_EUR_KWH)


def saving_eur(result: sd.Result, p: Pricing) -> float:
    return (result.solar_kwh * (p.night_eur_kwh - p.export_eur_kwh)
            - result.grid_kwh * (p.day_eur_kwh - p.night_eur_kwh))


# ----------------------------------------------------------------------------- controllers

class EvccPolicy(sd.HeldPolicy):
    meter_interval_s = 30
    follow_sun = True
    ENABLE_S, DISABLE_S = 60, 180

    def __init__(self) -> None:
        super().__init__()
        self.enabled = False
        self._timer: float | None = None

    def decide(self, obs: Obs) -> float:
        effective = min(obs.car_a + 2.0, obs.offer_a) if obs.car_a > 0 else obs.offer_a
        target = min(max(int(effective + obs.grid_w / sd.WPA), 0), sd.CAR_MAX_A)
        if not self.enabled:
            if target >= sd.CAR_MIN_A:
                self._timer = obs.t if self._timer is None else self._timer
                if obs.t - self._timer >= self.ENABLE_S:
                    self.enabled, self._timer = True, None
                    return sd.CAR_MIN_A
            else:
                self._timer = None
            return 0.0
        if target >= sd.CAR_MIN_A:
            self._timer = None
            return float(target)
        self._timer = obs.t if self._timer is None else self._timer
        if obs.t - self._timer >= self.DISABLE_S:
            self.enabled, self._timer = False, None
            return 0.0
        return sd.CAR_MIN_A


class OpenWbPolicy(sd.HeldPolicy):
    meter_interval_s = 10
    follow_sun = True
    ON_W, ON_S, OFF_S = 1500.0 * sd.PHASES, 30, 60
    AIM_IMPORT_W, SLEW_A = 115.0, 5.0

    def __init__(self) -> None:
        super().__init__()
        self.on = False
        self._timer: float | None = None
        self.current = 0.0

    def decide(self, obs: Obs) -> float:
        if not self.on:
            if obs.grid_w >= self.ON_W:
                self._timer = obs.t if self._timer is None else self._timer
                if obs.t - self._timer >= self.ON_S:
                    self.on, self._timer, self.current = True, None, sd.CAR_MIN_A
            else:
                self._timer = None
            return self.current if self.on else 0.0
        wanted = obs.car_a + (obs.grid_w - self.AIM_IMPORT_W) / sd.WPA
        step = min(max(wanted - self.current, -self.SLEW_A), self.SLEW_A)
        self.current = min(max(int(self.current + step), sd.CAR_MIN_A), sd.CAR_MAX_A)
        if obs.grid_w < 0:
            self._timer = obs.t if self._timer is None else self._timer
            if obs.t - self._timer >= self.OFF_S:
                self.on, self._timer, self.current = False, None, 0.0
        else:
            self._timer = None
        return self.current


class OursPolicy:
    """The daemon's tracker through the replay's engine, with the hello's tariff and mode."""

    def __init__(self, mode: str | None, prices: Pricing | None, **green) -> None:
        cfg = sd.config_for(**green)
        self.engine = ReplayEngine(cfg, CarSpec(sd.CAR_MIN_A, sd.CAR_MAX_A, sd.PHASES, sd.VOLTS),
                                   pricing=prices, mode=mode)
        self.meter_interval_s = cfg.green.interval_s

    def step(self, obs: Obs) -> int:
        return self.engine.step(obs)


def make_controller(name: str, colour: str):
    if name == "cheapest":
        return OursPolicy("cheapest", pricing(colour))
    if name == "solar":
        return OursPolicy("solar", pricing(colour))
    if name == "round1":
        return OursPolicy(None, None)
    if name == "seed":
        return sd.SeedPolicy(sd.config_for())
    return {"evcc": EvccPolicy, "openwb": OpenWbPolicy}[name]()


# ----------------------------------------------------------------------------- the bound

def bound_eur(day: sd.Day, p: Pricing) -> float:
    """The best saving a clairvoyant controller with whole amps and 60 s holds can make."""
    sun_eur, grid_eur = p.night_eur_kwh - p.export_eur_kwh, p.day_eur_kwh - p.night_eur_kwh
    start, end = sd.GREEN_HOURS[0] * 3600, sd.GREEN_HOURS[1] * 3600
    on_gain = []
    for slot in range(start, end, SLOT_S):
        surplus = [max(day.pv[t] - day.house[t], 0.0) for t in range(slot, slot + SLOT_S)]
        best = float("-inf")
        for amps in range(int(sd.CAR_MIN_A), int(sd.CAR_MAX_A) + 1):
            car_w = (amps - sd.CAR_BELOW_A) * sd.WPA
            sun = sum(min(car_w, s) for s in surplus)
            grid = car_w * SLOT_S - sun
            best = max(best, (sun * sun_eur - grid * grid_eur) / 3.6e6)
        on_gain.append(best)
    # States: (on?, slots since the last switch, capped at HOLD_SLOTS).
    neg = float("-inf")
    off = [neg] * (HOLD_SLOTS + 1)
    on = [neg] * (HOLD_SLOTS + 1)
    off[HOLD_SLOTS] = 0.0
    for gain in on_gain:
        new_off = [neg] * (HOLD_SLOTS + 1)
        new_on = [neg] * (HOLD_SLOTS + 1)
        for k in range(HOLD_SLOTS + 1):
            nk = min(k + 1, HOLD_SLOTS)
            if off[k] > neg:
                new_off[nk] = max(new_off[nk], off[k])
                if k == HOLD_SLOTS:
                    new_on[1] = max(new_on[1], off[k] + gain)
            if on[k] > neg:
                new_on[nk] = max(new_on[nk], on[k] + gain)
                if k == HOLD_SLOTS:
                    new_off[1] = max(new_off[1], on[k])
        off, on = new_off, new_on
    return max(max(off), max(on))


# ----------------------------------------------------------------------------- running

_DAYS: list[sd.Day] = []


def _init(days) -> None:
    global _DAYS
    _DAYS = days


def _run(job) -> tuple[int, str, str, sd.Result]:
    index, name, colour = job
    return index, name, colour, sd.run_day(_DAYS[index], make_controller(name, colour))


def _run_budget(job) -> tuple[int, float, str, sd.Result]:
    index, budget, colour = job
    ours = OursPolicy("cheapest", pricing(colour), restart_budget_share=budget)
    return index, budget, colour, sd.run_day(_DAYS[index], ours)


TRADEOFF_BUDGETS = (0.0, 0.1, 0.3, 1.0, 3.0)


def print_tradeoff(days, pool, seed_cycles: dict[int, int], bounds) -> None:
    """`[green] restart_budget_share`: euros against starts, per colour, over all days."""
    jobs = [(i, b, c) for i in range(len(days)) for b in TRADEOFF_BUDGETS for c in COLOURS]
    runs = pool.map(_run_budget, jobs)
    print("\ntrade-off, cheapest: restart_budget_share -> EUR over all days (share of the "
          "bounds), starts (seed's starts), days meeting both 95 % and <= seed's starts")
    for colour in COLOURS:
        bound = sum(bounds[(i, colour)] for i in range(len(days)))
        for budget in TRADEOFF_BUDGETS:
            rows = [(i, r) for i, b, c, r in runs if b == budget and c == colour]
            eur = sum(saving_eur(r, pricing(colour)) for _, r in rows)
            starts = sum(r.cycles for _, r in rows)
            both = sum(1 for i, r in rows if saving_eur(r, pricing(colour)) >=
                       AIM_SHARE * bounds[(i, colour)] and r.cycles <= seed_cycles[i])
            print(f"  {colour:5} {budget:4.1f}: {eur:7.3f} EUR ({100 * eur / bound:4.1f} %), "
                  f"{starts:4} starts ({sum(seed_cycles.values())}), both aims on {both}/"
                  f"{len(days)} days")


def _bound(job) -> tuple[int, str, float]:
    index, colour = job
    return index, colour, bound_eur(_DAYS[index], pricing(colour))


@dataclass
class Cell:
    eur: float
    result: sd.Result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, help="only the first N days")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tradeoff", action="store_true",
                        help="also sweep [green] restart_budget_share (about 3 min more)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    days = sd.all_days()[:args.days]
    # Colour-blind controllers run once per day; ours in cheapest mode once per colour.
    jobs = [(i, name, "blue") for i in range(len(days)) for name in CONTROLLERS
            if name != "cheapest"]
    jobs += [(i, "cheapest", colour) for i in range(len(days)) for colour in COLOURS]
    with Pool(args.workers, initializer=_init, initargs=(days,)) as pool:
        runs = pool.map(_run, jobs)
        bounds = {(i, c): eur for i, c, eur in pool.map(
            _bound, [(i, c) for i in range(len(days)) for c in COLOURS])}
        results = {}
        for i, name, colour, result in runs:
            for c in (COLOURS if name != "cheapest" else (colour,)):
                results[(i, name, c)] = Cell(saving_eur(result, pricing(c)), result)
        report(days, results, bounds)
        if args.tradeoff:
            print_tradeoff(days, pool, {i: results[(i, "seed", "blue")].result.cycles
                                        for i in range(len(days))}, bounds)
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


def report(days, results, bounds) -> None:

    print(f"{len(days)} days (bench/solar_day.py's), car 6-16 A x 3 x 230 V; saving = sun x "
          f"(N - E) - day grid x (D - N), E = {EXPORT_EUR_KWH} EUR/kWh; bound: clairvoyant, "
          f"whole amps, 60 s holds, {SLOT_S} s slots\n")
    aims = {}
    for colour in COLOURS:
        p = pricing(colour)
        print(f"{colour.upper()} (D {p.day_eur_kwh}, N {p.night_eur_kwh}): EUR/day "
              "(share of the bound) [starts]")
        print(f"  {'day':24} {'bound':>7} " + " ".join(f"{n:>17}" for n in CONTROLLERS))
        for i, day in enumerate(days):
            bound = bounds[(i, colour)]
            cells = []
            for name in CONTROLLERS:
                cell = results[(i, name, colour)]
                share = f"{100 * cell.eur / bound:4.0f}%" if bound > 0 else "   -"
                cells.append(f"{cell.eur:6.3f} {share} [{cell.result.cycles:2}]")
            print(f"  {day.name[:24]:24} {bound:7.3f} " + " ".join(f"{c:>17}" for c in cells))
            ours = results[(i, "cheapest", colour)]
            others = [results[(i, n, colour)] for n in ("seed", "evcc", "openwb")]
            seed = results[(i, "seed", colour)]
            aims[(i, colour)] = (
                bound <= 0 or ours.eur >= AIM_SHARE * bound,
                all(ours.eur > o.eur for o in others),
                ours.result.cycles <= seed.result.cycles,
                results[(i, "solar", colour)].result.grid_kwh <= seed.result.grid_kwh + 1e-9)
        print()
    print("over all days, share of the summed bounds:")
    for colour in COLOURS:
        bound = sum(bounds[(i, colour)] for i in range(len(days)))
        print(f"  {colour:5} " + ", ".join(
            f"{name} {100 * sum(results[(i, name, colour)].eur for i in range(len(days))) / bound:.1f} %"
            for name in CONTROLLERS))
    names = ("cheapest >= 95 % of the bound", "cheapest beats seed, evcc and openWB",
             "cheapest starts <= seed's", "solar grid kWh <= seed's")
    for k, label in enumerate(names):
        met = sum(1 for v in aims.values() if v[k])
        missed = [f"{days[i].name[:16]}/{c}" for (i, c), v in aims.items() if not v[k]]
        print(f"aim {label}: {met}/{len(aims)}" + (f"; missed: {', '.join(missed)}"
                                                   if missed else ""))
    grid = {n: sum(results[(i, n, "blue")].result.grid_kwh for i in range(len(days)))
            for n in CONTROLLERS if n != "cheapest"}
    print("grid kWh into the car over all days (colour-blind controllers): "
          + ", ".join(f"{n} {kwh:.2f}" for n, kwh in grid.items()))


if __name__ == "__main__":
    sys.exit(main())
