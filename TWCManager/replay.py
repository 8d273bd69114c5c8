"""`python -m TWCManager.replay [--config F]`: the daemon's green policy as a JSON-lines filter.

Any outside tool (our own `bench/solar_day.py`, or someone else's simulator) can score the real
green-tracking code with it: the daemon's site core (`core.site.Site`, built by the same
`core.site.site_from`): the tracker (reading paired with the draw at its time, hysteresis,
fail-safe), the pool (green hours) and each offer (the Gen2 holds: 60 s start/stop, 5 s
lowering, the 16/21 A spike), with `SlaveTWC` bookkeeping, for one simulated slave in "track
green" (non-scheduled amps = -1). What is here is only what the RS-485 engine does around the
site: the TWC's report in (its heartbeat, its phase volts), the offer out.

Protocol (issue 5 point 8), one JSON object per line each way, in lockstep, flushed per line:

    in : {"type":"hello","dt_s":1,"car":{"min_a":6,"max_a":16,"phases":3,"volts":230}}
    out: {"type":"hello","name":"twcmanager","step_interval_s":1,"meter_interval_s":10}
    in : {"type":"obs","t":34215,"clock":"09:30:15","grid_w":1234.5,"pv_w":5678.9,
          "meter_t":34215,"car_a":7.93,"car_state":"charging","offer_a":8.0}
    out: {"offer_a": 8}
    in : {"type":"end"}                       -> exit 0

- The hello may carry `"mode": "solar" | "cheapest"` (decisions §6.2; default: `[green] mode`)
  and `"tariff": {"day_eur_kwh": D, "night_eur_kwh": N, "export_eur_kwh": E,
  "colour": "BLUE|WHITE|RED"}` (decisions §6.1): the grid now at D, tonight at N, export at E,
  whatever the time (the colour is informative). They drive the same tracker as the daemon's
  tariff does.

- `t`: seconds since local midnight; the policy's time base (it may wrap past midnight).
- `clock`: local "HH:MM[:SS]" for the green hours (default: from `t`).
- `grid_w`, `meter_t`: the latest meter reading (+ = export) and when it was taken; a new
  reading reaches the tracker only when `meter_t` changes, as the daemon's command runs every
  `green.interval_s` (the `meter_interval_s` of the hello reply). `grid_w` null = no reading.
- `car_a`, `car_state` (stopped / starting / charging / full), `offer_a`: what the TWC
  reports: its draw, its state (03 / 08 / 01 / 03) and the limit in force.
- Out, `offer_a`: whole amps; below the car's minimum means stop.
- Unknown fields are ignored; blank lines are skipped. A malformed line (not JSON, a missing
  or wrong-typed field, an unknown type or car_state, obs before hello) ends the filter with a
  message on stderr and exit status 2. End of input without an `end` line ends it quietly.

The simulated slave is protocol 2 (6 A floor), rated at the hello's car max_a capped by the
configuration's wiring; it reports the car's volts on the car's phases when the hello gives
them (watts per amp = volts x phases, as a real TWC's FD EB report gives), else nothing (the
configuration's green.volts x green.phases is used). The car's min_a is accepted but not
used: the daemon cannot know it either; its minimum is max(twc.min_amps_per_twc, 6 A).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TextIO

from .config import Config, ConfigError, find_and_load_config
from .core import policy
from .core.interfaces import FixedTariff, MeterReading, Pricing, SiteReadings
from .core.settings import Settings
from .core.site import site_from
from .twc.slave import STATE_CHARGING, STATE_PLUGGED_NO_CHARGE, STATE_STARTING, SlaveTWC

EXIT_MALFORMED = 2
DAY_S = 86_400
# Any fixed date: only the time of day matters to green tracking (no schedule, no charge-now).
_DAY0 = datetime(2024, 6, 21)

CAR_STATES = {
    "stopped": STATE_PLUGGED_NO_CHARGE,
    "starting": STATE_STARTING,
    "charging": STATE_CHARGING,
    "full": STATE_PLUGGED_NO_CHARGE,
}

SLAVE_ID = 0x032E
SLAVE_SIGN = 0x77
PROTOCOL = 2


class ProtocolError(ValueError):
    """A line that does not follow the replay protocol."""


@dataclass(frozen=True)
class CarSpec:
    """The car a replay's hello describes (not the simulated car of TWCManager.sim)."""
    min_a: float = 6.0
    max_a: float | None = None
    phases: int | None = None
    volts: float | None = None


@dataclass(frozen=True)
class Obs:
    t: float
    clock: str | None
    grid_w: float | None
    pv_w: float | None
    meter_t: float | None
    car_a: float
    car_state: str
    offer_a: float


class ReplayEngine:
    """One simulated slave under the daemon's green policy, stepped by observations.

    `step(obs)` does what the daemon does between a slave heartbeat and the next master
    heartbeat: book the heartbeat, let the tracker see the latest meter reading with the amps
    the car draws, pick the pool, compute and record the offer."""

    def __init__(self, cfg: Config, car: CarSpec | None = None,
                 holds: policy.Holds = policy.Holds(), *, pricing: Pricing | None = None,
                 mode: str | None = None) -> None:
        car = car or CarSpec()
        if mode is not None:
            cfg = dataclasses.replace(cfg, green=dataclasses.replace(cfg.green, mode=mode))
        self.cfg = cfg
        self.car = car
        self.site = site_from(cfg, Settings(non_scheduled_amps=-1), holds,
                              tariff=FixedTariff(pricing) if pricing else None)
        self.reading: MeterReading | None = None
        # What a real unit reports in FD EB: the car's volts on each live phase.
        volts = car.volts or cfg.green.volts
        phases = car.phases or cfg.green.phases
        self.phase_volts = ((volts,) * phases + (0,) * (3 - phases)
                            if car.volts or car.phases else None)
        rated = float(cfg.twc.wiring_max_amps_per_twc)
        if car.max_a is not None and car.max_a > 0:
            rated = min(rated, float(car.max_a))
        self.rated_amps = rated
        self.slave: SlaveTWC | None = None
        self._meter_t: float | None = None
        self._day = 0
        self._last_t: float | None = None
        self.last_pool: policy.PoolDecision | None = None
        self.last_offer: policy.Offer | None = None

    @property
    def meter_interval_s(self) -> float:
        return self.cfg.green.interval_s

    def _now(self, t: float) -> float:
        """Monotonic seconds from `t` (seconds since midnight), counting midnights passed."""
        if self._last_t is not None and t < self._last_t - DAY_S / 2:
            self._day += 1
        self._last_t = t
        return self._day * DAY_S + t

    def _when(self, obs: Obs, now: float) -> datetime:
        if obs.clock is not None:
            hours, minutes, seconds = _parse_clock(obs.clock)
            return _DAY0 + timedelta(days=self._day, hours=hours, minutes=minutes,
                                     seconds=seconds)
        return _DAY0 + timedelta(seconds=now)

    def step(self, obs: Obs) -> int:
        now = self._now(obs.t)
        if self.slave is None:
            # Registered at the first observation: the 60 s start hold runs from here,
            # as it runs from a real unit's first linkready.
            self.slave = SlaveTWC(SLAVE_ID, SLAVE_SIGN, PROTOCOL, self.rated_amps,
                                  registered_at=now)
            self.slave.volts = self.phase_volts
        slave = self.slave
        slave.update_from_heartbeat(CAR_STATES[obs.car_state], obs.offer_a, obs.car_a, now)

        if obs.meter_t is not None and obs.grid_w is not None and obs.meter_t != self._meter_t:
            self._meter_t = obs.meter_t
            at = self._day * DAY_S + obs.meter_t
            if at > now:          # taken before the last midnight
                at -= DAY_S
            house = obs.pv_w - obs.grid_w if obs.pv_w is not None else None
            self.reading = MeterReading(obs.grid_w, obs.pv_w, house, at, at)
        # else: no new reading; the last one ages toward the stale fail-safe

        # What the RS-485 engine does at a heartbeat: one site step, then the unit's offer.
        readings = SiteReadings(meter=self.reading, meter_attempted=self.reading is not None)
        self.last_pool = self.site.step(now, self._when(obs, now), readings, [slave]).pool
        offer = self.site.offer(slave, [], now)
        slave.record_offer(offer.amps, now)
        self.last_offer = offer
        return offer.amps


# ------------------------------------------------------------------------ parsing

def _parse_clock(text: str) -> tuple[int, int, int]:
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        numbers = [int(p) for p in parts] + ([0] if len(parts) == 2 else [])
    except ValueError:
        raise ProtocolError(f"clock {text!r} is not HH:MM or HH:MM:SS") from None
    hours, minutes, seconds = numbers
    if not (0 <= hours <= 24 and 0 <= minutes < 60 and 0 <= seconds < 61):
        raise ProtocolError(f"clock {text!r} is out of range")
    return hours, minutes, seconds


def _number(data: dict, key: str, *, required: bool, allow_null: bool = False) -> float | None:
    if key not in data or (data[key] is None and allow_null):
        if required and key not in data:
            raise ProtocolError(f"missing field {key!r}")
        return None
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProtocolError(f"field {key!r} must be a number, got {json.dumps(value)}")
    return float(value)


def parse_car(data: Any) -> CarSpec:
    if data is None:
        return CarSpec()
    if not isinstance(data, dict):
        raise ProtocolError("hello field 'car' must be an object")
    min_a = _number(data, "min_a", required=False)
    max_a = _number(data, "max_a", required=False)
    volts = _number(data, "volts", required=False)
    phases = _number(data, "phases", required=False)
    if phases is not None and phases not in (1, 2, 3):
        raise ProtocolError(f"car phases must be 1, 2 or 3, got {phases:g}")
    if volts is not None and volts <= 0:
        raise ProtocolError(f"car volts must be positive, got {volts:g}")
    return CarSpec(min_a=6.0 if min_a is None else min_a, max_a=max_a,
               phases=None if phases is None else int(phases), volts=volts)


TARIFF_COLOURS = ("BLUE", "WHITE", "RED")
MODES = ("solar", "cheapest")


def parse_tariff(data: Any) -> Pricing | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ProtocolError("hello field 'tariff' must be an object")
    prices = {}
    for key in ("day_eur_kwh", "night_eur_kwh", "export_eur_kwh"):
        value = _number(data, key, required=True)
        if not 0 <= value <= 10:
            raise ProtocolError(f"tariff {key} must be 0..10 EUR/kWh, got {value:g}")
        prices[key] = value
    colour = data.get("colour")
    if colour is not None and colour not in TARIFF_COLOURS:
        raise ProtocolError(f"tariff colour {json.dumps(colour)} is not one of "
                            + ", ".join(TARIFF_COLOURS))
    return Pricing(**prices)


def parse_mode(data: Any) -> str | None:
    if data is not None and data not in MODES:
        raise ProtocolError(f"mode {json.dumps(data)} is not one of " + ", ".join(MODES))
    return data


def parse_obs(data: dict) -> Obs:
    t = _number(data, "t", required=True)
    clock = data.get("clock")
    if clock is not None:
        if not isinstance(clock, str):
            raise ProtocolError("field 'clock' must be a string HH:MM:SS")
        _parse_clock(clock)
    state = data.get("car_state", "stopped")
    if state not in CAR_STATES:
        raise ProtocolError(f"car_state {state!r} is not one of " + ", ".join(CAR_STATES))
    return Obs(
        t=t, clock=clock,
        grid_w=_number(data, "grid_w", required=False, allow_null=True),
        pv_w=_number(data, "pv_w", required=False, allow_null=True),
        meter_t=_number(data, "meter_t", required=False, allow_null=True),
        car_a=_number(data, "car_a", required=False) or 0.0,
        car_state=state,
        offer_a=_number(data, "offer_a", required=False) or 0.0,
    )


def _decode(line: str) -> dict:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON ({exc.msg} at character {exc.pos + 1}): "
                            f"{line.strip()[:80]!r}") from None
    if not isinstance(data, dict):
        raise ProtocolError("expected a JSON object")
    kind = data.get("type")
    if kind not in ("hello", "obs", "end"):
        raise ProtocolError(f"unknown type {json.dumps(kind)}; expected hello, obs or end")
    return data


def serve(cfg: Config, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Run the filter until `end` or end of input; returns the exit status."""
    engine: ReplayEngine | None = None
    line_no = 0
    try:
        for line_no, line in enumerate(stdin, 1):
            if not line.strip():
                continue
            data = _decode(line)
            kind = data["type"]
            if kind == "end":
                return 0
            if kind == "hello":
                engine = ReplayEngine(cfg, parse_car(data.get("car")),
                                      pricing=parse_tariff(data.get("tariff")),
                                      mode=parse_mode(data.get("mode")))
                interval = engine.meter_interval_s
                reply = {"type": "hello", "name": "twcmanager", "step_interval_s": 1,
                         "meter_interval_s": int(interval) if interval == int(interval)
                         else interval}
            else:
                if engine is None:
                    raise ProtocolError("obs before hello")
                reply = {"offer_a": engine.step(parse_obs(data))}
            stdout.write(json.dumps(reply, separators=(",", ":")) + "\n")
            stdout.flush()
    except ProtocolError as exc:
        print(f"TWCManager.replay: line {line_no}: {exc}", file=stderr)
        return EXIT_MALFORMED
    except BrokenPipeError:
        return 0
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m TWCManager.replay",
        description="The daemon's green-tracking policy as a JSON-lines filter on stdin/stdout "
                    "(hello / obs / end; see the module docstring).")
    parser.add_argument("--config", help="TOML configuration file")
    args = parser.parse_args(argv)
    # The green service logs the fail-safe (no valid reading) as the daemon does: to stderr.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="TWCManager.replay: %(message)s")
    try:
        cfg = find_and_load_config(args.config)
    except ConfigError as exc:
        print(f"TWCManager.replay: configuration error: {exc}", file=sys.stderr)
        return EXIT_MALFORMED
    status = serve(cfg, sys.stdin, sys.stdout, sys.stderr)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    return status


if __name__ == "__main__":
    sys.exit(main())
