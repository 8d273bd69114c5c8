"""The small typed interfaces between the site core and the edges, in the spirit of evcc's
`api/api.go`: what a meter, a controllable inverter, a tariff and a clock must offer. The
core depends on these, never on a serial port, a subprocess or the system clock."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# Meter source states (status()["state"]).
OK = "ok"
FAILING = "failing"   # the last attempts failed, the last good reading is still fresh
STALE = "stale"       # no valid reading for stale_after_s: green tracking offers 0 A


def reading_state(fresh: bool, error: str | None) -> str:
    """A polled source's state: its last good reading still fresh, and the last attempt ok."""
    return OK if fresh and error is None else FAILING if fresh else STALE


@dataclass(frozen=True)
class MeterReading:
    """One reading of the site meter."""
    grid_w: float            # + = export to the grid
    solar_w: float | None
    house_w: float | None    # the meter's consumption, the cars included
    at: float                # monotonic seconds
    at_wall: float           # unix seconds


@dataclass(frozen=True)
class BatteryReading:
    """One reading of a battery inverter (issue 11)."""
    power_w: float           # + = charging the battery
    soc_pct: float | None
    at: float                # monotonic seconds


@dataclass(frozen=True)
class SiteReadings:
    """The latest readings handed to one site step; None = none (yet)."""
    meter: MeterReading | None = None
    # Has the meter been asked at least once (a missing reading is then worth a log line)?
    meter_attempted: bool = True
    meter_error: str | None = None
    battery: BatteryReading | None = None


class SiteMeter(Protocol):
    """Grid (and solar, house) power, read in the background; latest() never blocks."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def latest(self) -> MeterReading | None: ...
    def status(self, now: float) -> dict: ...


class ControllableInverter(Protocol):
    """A battery inverter the site may command (issue 11): readings and priorities."""

    def latest(self) -> BatteryReading | None: ...
    def apply(self, command: str, reason: str) -> None: ...


@dataclass(frozen=True)
class Pricing:
    """What the car's energy costs at a moment (decisions §6.1): a grid kWh now, a grid kWh
    tonight at off-peak (when the car gets what it misses), and an exported sun kWh."""
    day_eur_kwh: float
    night_eur_kwh: float
    export_eur_kwh: float

    def ride_share(self) -> float:
        """The share of a charging current the sun must cover for taking the rest from the grid
        now to cost less than exporting that sun and buying the whole tonight:
        s·(N − E) ≥ (1 − s)·(D − N)  ⇔  s ≥ (D − N) / (D − E). 0 when the grid now costs no
        more than tonight. The same share decides rounding a current up rather than down."""
        premium = self.day_eur_kwh - self.night_eur_kwh
        if premium <= 0:
            return 0.0
        return min(premium / max(self.day_eur_kwh - self.export_eur_kwh, premium), 1.0)


class Tariff(Protocol):
    """What a kWh from the grid costs now, and what an exported one earns."""
    name: str

    def import_eur_kwh(self, when: datetime) -> float | None: ...
    def export_eur_kwh(self, when: datetime) -> float | None: ...
    def pricing(self, when: datetime) -> Pricing | None: ...


class Clock(Protocol):
    """Monotonic seconds for holds and ages, tz-aware wall time for schedules and tariffs."""

    def monotonic(self) -> float: ...
    def now(self) -> datetime: ...


class NoTariff:
    """No tariff configured: prices unknown, everything behaves as in round 1."""
    name = "none"

    def import_eur_kwh(self, when: datetime) -> float | None:
        return None

    def export_eur_kwh(self, when: datetime) -> float | None:
        return None

    def pricing(self, when: datetime) -> Pricing | None:
        return None


@dataclass(frozen=True)
class FixedTariff:
    """Constant prices (the replay's hello `tariff`): the grid now at `day`, tonight at `night`,
    export at `export`, whatever the time."""
    prices: Pricing
    name: str = "fixed"

    def import_eur_kwh(self, when: datetime) -> float | None:
        return self.prices.day_eur_kwh

    def export_eur_kwh(self, when: datetime) -> float | None:
        return self.prices.export_eur_kwh

    def pricing(self, when: datetime) -> Pricing | None:
        return self.prices


class SystemClock:
    """The machine's clocks; local wall time, tz-aware."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now().astimezone()
