"""Green-energy tracking: how many amps the solar surplus can feed the cars.

Three parts, outermost last:
* `parse_output`: the energy command's stdout (a bare integer = grid watts, as
  LennyBo's `solaredge -grid`; or JSON with grid_w / solar_w / house_w).
* `GreenTracker` (pure, time passed in): surplus → amps, with start/stop
  hysteresis so passing clouds do not cycle the car, and the fail-safe of
  decisions.md §4.10 (no valid reading for stale_after_s → 0 A, and why).
* `CommandSource`: runs the command every interval in its own thread with a
  timeout, so a slow or hung command never delays a heartbeat.
"""
from __future__ import annotations

import bisect
import json
import logging
import shlex
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Callable, Protocol

from .config import GreenConfig

log = logging.getLogger("TWCManager.green")

OK = "ok"
FAILING = "failing"   # the last attempts failed, the last good reading is still fresh
STALE = "stale"       # no valid reading for stale_after_s: green tracking offers 0 A


@dataclass(frozen=True)
class Reading:
    grid_w: float            # + = export to the grid
    solar_w: float | None
    house_w: float | None
    at: float                # monotonic seconds
    at_wall: float           # unix seconds


def parse_output(text: str) -> tuple[float, float | None, float | None]:
    """(grid_w, solar_w, house_w) from the command's stdout; ValueError if unusable."""
    text = text.strip()
    if not text:
        raise ValueError("no output")
    if text.startswith("{"):
        data = json.loads(text)
        grid = data.get("grid_w")
        if isinstance(grid, bool) or not isinstance(grid, (int, float)):
            raise ValueError(f"JSON without a numeric grid_w: {text[:80]!r}")
        solar = data.get("solar_w")
        house = data.get("house_w")
        return float(grid), _number_or_none(solar), _number_or_none(house)
    first_line = text.splitlines()[0].strip()
    try:
        return float(int(first_line)), None, None
    except ValueError:
        raise ValueError(f"not an integer number of watts: {first_line[:80]!r}") from None


def _number_or_none(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclass(frozen=True)
class GreenParams:
    """The tracker's settings; the defaults are the config's (one place: config.py,
    where README "Green tracking" explains them)."""
    volts: float = GreenConfig.volts
    phases: int = GreenConfig.phases
    amps_offset: float = GreenConfig.amps_offset
    stale_after_s: float = GreenConfig.stale_after_s
    start_delay_s: float = GreenConfig.start_delay_s
    stop_delay_s: float = GreenConfig.stop_delay_s
    ride_through_wh: float = GreenConfig.ride_through_wh
    ride_through_min_share: float = GreenConfig.ride_through_min_share

    @classmethod
    def from_config(cls, green: GreenConfig) -> GreenParams:
        # Every field here is the config key of the same name.
        return cls(**{f.name: getattr(green, f.name) for f in fields(cls)})

    @property
    def watts_per_amp(self) -> float:
        return self.volts * self.phases


@dataclass
class GreenDecision:
    amps: float | None        # None: no valid reading (the policy offers 0 A)
    reason: str


class GreenTracker:
    """Surplus to amps with hysteresis. Pure: every input, time included, is passed in.

    available = (grid_w + car_amps × W/A) / (W/A) + amps_offset, with car_amps the
    draw when the reading was taken and W/A the watts per amp (the TWC's measured phase volts summed, else volts × phases).
    Start: available ≥ the minimum for start_delay_s. A shortfall is ridden through at
    the minimum until the first of: the grid energy it cost (the minimum minus the
    surplus, integrated) reaches ride_through_wh; the surplus covers less than
    ride_through_min_share of the minimum; it lasted stop_delay_s. Then the car
    stops. A dead source stops at once.
    """

    # Longest step counted into a shortfall's cost: a stalled loop must not look like
    # minutes of import.
    MAX_STEP_S = 5.0

    def __init__(self, params: GreenParams) -> None:
        self.params = params
        self.on = False
        self._above_since: float | None = None
        self._below_since: float | None = None
        self._shortfall_wh = 0.0
        self._last_now: float | None = None
        self.last = GreenDecision(None, "no reading yet")
        self.available_amps: float | None = None

    def update(self, now: float, reading: Reading | None, car_amps: float,
               min_amps: float, watts_per_amp: float | None = None) -> GreenDecision:
        p = self.params
        step_s = 0.0 if self._last_now is None else min(max(now - self._last_now, 0.0),
                                                         self.MAX_STEP_S)
        self._last_now = now
        if reading is None or now - reading.at > p.stale_after_s:
            self.on, self._above_since, self._below_since = False, None, None
            self.available_amps = None
            self.last = GreenDecision(None, "no valid energy reading" if reading is None else
                                      f"no valid energy reading for {now - reading.at:.0f} s")
            return self.last
        wpa = watts_per_amp or p.watts_per_amp
        # car_amps must be the draw when the reading was taken (GreenService looks it up in
        # its CarDrawLog): a later draw added to an old grid value counts every amp taken
        # since twice (bench/solar_day.py showed the offer cycling 6 -> 16 A every 60 s).
        available = reading.grid_w / wpa + car_amps + p.amps_offset
        self.available_amps = available
        if available >= min_amps:
            self._below_since = None
            if self.on:
                self.last = GreenDecision(available, f"surplus {available:.1f} A")
            else:
                self._above_since = self._above_since if self._above_since is not None else now
                wait_s = p.start_delay_s - (now - self._above_since)
                if wait_s <= 0:
                    self.on = True
                    self.last = GreenDecision(available, f"surplus {available:.1f} A: starting")
                else:
                    self.last = GreenDecision(0.0, f"surplus {available:.1f} A: starting in "
                                                   f"{wait_s:.0f} s if it lasts")
        else:
            self._above_since = None
            if not self.on:
                self.last = GreenDecision(max(available, 0.0),
                                          f"surplus {available:.1f} A is below {min_amps:g} A")
            else:
                if self._below_since is None:
                    self._below_since, self._shortfall_wh = now, 0.0
                # What riding through costs: the grid feeds the minimum's missing part.
                self._shortfall_wh += (min_amps - available) * wpa * step_s / 3600.0
                why = self._why_stop(now, available / min_amps)
                if why:
                    self.on = False
                    self.last = GreenDecision(max(available, 0.0),
                                              f"surplus {available:.1f} A: stopped ({why})")
                else:
                    # A passing cloud: keep the car at its minimum for a while.
                    self.last = GreenDecision(
                        min_amps, f"surplus {available:.1f} A: riding through at {min_amps:g} A "
                                  f"({self._shortfall_wh:.0f} of {p.ride_through_wh:g} Wh)")
        return self.last

    def _why_stop(self, now: float, share: float) -> str | None:
        p = self.params
        if share < p.ride_through_min_share:
            return f"the sun covers {share:.0%} of the minimum"
        if self._shortfall_wh >= p.ride_through_wh:
            return f"the cloud cost {self._shortfall_wh:.0f} Wh from the grid"
        if now - self._below_since >= p.stop_delay_s:
            return f"short for {now - self._below_since:.0f} s"
        return None


class ReadingSource(Protocol):
    def latest(self) -> Reading | None: ...
    def status(self, now: float) -> dict: ...


class NoGreenSource:
    """No energy source configured: green tracking offers nothing."""

    def latest(self) -> Reading | None:
        return None

    def status(self, now: float) -> dict:
        return {"state": STALE, "reason": "no energy source configured"}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass
class _History:
    """One sample a minute for the dashboard chart (6 h by default)."""
    samples: deque = field(default_factory=lambda: deque(maxlen=360))
    _minute: int = -1

    def add(self, at_wall: float, reading: Reading | None, car_w: float) -> None:
        minute = int(at_wall // 60)
        if minute == self._minute:
            return
        self._minute = minute
        self.samples.append({
            "t": minute * 60,
            "grid_w": None if reading is None else round(reading.grid_w),
            "solar_w": None if reading is None or reading.solar_w is None else round(reading.solar_w),
            "house_w": None if reading is None or reading.house_w is None else round(reading.house_w),
            "car_w": round(car_w),
        })


def resolve_command(argv: list[str]) -> list[str]:
    """`solaredge …` runs from the checkout too, before install.sh puts it on PATH."""
    import shutil
    import sys

    if argv and argv[0] == "solaredge" and shutil.which("solaredge") is None:
        return [sys.executable, "-m", "TWCManager.solaredge", *argv[1:]]
    return argv


class CommandSource:
    """Runs `command` every `interval_s` in a thread; keeps the last good reading."""

    def __init__(self, command: str, interval_s: float, stale_after_s: float,
                 timeout_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 active: Callable[[], bool] = lambda: True,
                 idle_interval_s: float = 60.0) -> None:
        self.command = command
        # While green tracking is not what sets the pool (another mode, or outside its
        # hours) the reading only feeds the status panel: read less often, since each
        # run of the command is a Python process (~0.15 CPU-s here, more on a Pi).
        self.active = active
        self.idle_interval_s = max(idle_interval_s, interval_s)
        self.argv = resolve_command(shlex.split(command))
        self.interval_s = interval_s
        self.stale_after_s = stale_after_s
        # Long enough for the solaredge command's own 3 s bound, never past the next read.
        self.timeout_s = timeout_s or max(1.0, min(interval_s, 15.0))
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: Reading | None = None
        self.last_error: str | None = None
        self.last_attempt_at: float | None = None
        self.failing_since_wall: float | None = None
        self.started_at = clock()
        self.reads = 0
        self.failures = 0
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="green-source", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()  # a hung command must not outlive the daemon
        if self._thread:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self._clock()
            self.read_once()
            while not self._stop.is_set():
                interval = self.interval_s if self.active() else self.idle_interval_s
                left = interval - (self._clock() - started)
                if left <= 0:
                    break
                # Wake at least every interval_s so switching to green is noticed soon.
                self._stop.wait(min(left, self.interval_s))

    def read_once(self) -> Reading | None:
        self.last_attempt_at = self._clock()
        try:
            proc = self._proc = subprocess.Popen(
                self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                stdin=subprocess.DEVNULL)
            try:
                out, err = proc.communicate(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                return self._failed(f"no answer within {self.timeout_s:g} s")
            finally:
                self._proc = None
            if proc.returncode != 0:
                detail = (out.strip() or err.strip() or "no output")[:120]
                raise ValueError(f"exit status {proc.returncode}: {detail}")
            grid, solar, house = parse_output(out)
        except (OSError, ValueError) as exc:
            return self._failed(str(exc))
        if house is None and solar is not None:
            house = solar - grid
        reading = Reading(grid, solar, house, self._clock(), self._wall())
        with self._lock:
            self._latest = reading
            recovered = self.last_error is not None
            self.last_error, self.failing_since_wall = None, None
            self.reads += 1
        if recovered:
            log.info("Energy source answers again: grid %+.0f W", grid)
        return reading

    def _failed(self, error: str) -> None:
        with self._lock:
            first = self.last_error is None
            self.last_error = error
            self.failures += 1
            if self.failing_since_wall is None:
                self.failing_since_wall = self._wall()
        if first:
            log.error("Energy source %r failed: %s", self.command, error)
        return None

    def latest(self) -> Reading | None:
        with self._lock:
            return self._latest

    def status(self, now: float) -> dict:
        with self._lock:
            latest, error, since = self._latest, self.last_error, self.failing_since_wall
        fresh = latest is not None and now - latest.at <= self.stale_after_s
        state = OK if fresh and error is None else FAILING if fresh else STALE
        return {
            "state": state,
            "command": self.command,
            "last_reading_at": latest.at_wall if latest else None,
            "last_error": error,
            "failing_since": since,
            "reads": self.reads,
            "failures": self.failures,
        }


class CarDrawLog:
    """What the cars drew, second by second, so a meter reading is paired with the draw
    at the moment it was taken: surplus = export + the car's draw *then*. Pairing it
    with the draw now double-counts a car that started after the reading (the seed's
    30 s cadence made exactly that mistake)."""

    def __init__(self, keep_s: float = 600.0) -> None:
        self._times: deque[float] = deque()
        self._amps: deque[float] = deque()
        self.keep_s = keep_s

    def add(self, now: float, amps: float) -> None:
        self._times.append(now)
        self._amps.append(amps)
        while self._times and now - self._times[0] > self.keep_s:
            self._times.popleft()
            self._amps.popleft()

    def at(self, when: float, default: float) -> float:
        """The draw last seen at or before `when` (the oldest if none is that old)."""
        if not self._times:
            return default
        index = bisect.bisect_right(self._times, when) - 1
        return self._amps[max(index, 0)]


class GreenService:
    """What the daemon holds: a reading source, the tracker, and a short history."""

    def __init__(self, source, params: GreenParams) -> None:
        self.source = source
        self.tracker = GreenTracker(params)
        self.history = _History()
        self.car_draw = CarDrawLog()
        self._car_w = 0.0
        self._stale_logged = False

    def start(self) -> None:
        self.source.start()

    def stop(self) -> None:
        self.source.stop()

    def decide(self, now: float, now_wall: float, car_amps: float, min_amps: float,
               watts_per_amp: float | None) -> GreenDecision:
        reading = self.source.latest()
        self.car_draw.add(now, car_amps)
        car_then = self.car_draw.at(reading.at, car_amps) if reading else car_amps
        decision = self.tracker.update(now, reading, car_then, min_amps, watts_per_amp)
        self._car_w = car_amps * (watts_per_amp or self.tracker.params.watts_per_amp)
        self.history.add(now_wall, reading if reading and decision.amps is not None else None,
                         self._car_w)
        # Before the first attempt has finished there is nothing to report yet.
        attempted = getattr(self.source, "reads", 1) + getattr(self.source, "failures", 1) > 0
        stale = decision.amps is None and attempted
        if stale and not self._stale_logged:
            status = self.source.status(now)
            log.error("Green tracking offers 0 A: %s%s", decision.reason,
                      f" ({status['last_error']})" if status.get("last_error") else "")
        elif not stale and self._stale_logged:
            log.info("Green tracking has valid readings again")
        self._stale_logged = stale
        return decision

    def status(self, now: float) -> dict:
        reading = self.source.latest()
        status = dict(self.source.status(now))
        decision = self.tracker.last
        status.update({
            "grid_w": reading.grid_w if reading else None,
            "solar_w": reading.solar_w if reading else None,
            # The meter's consumption includes the car; the house is the rest.
            "house_w": (round(reading.house_w - self._car_w)
                        if reading and reading.house_w is not None else None),
            "car_w": round(self._car_w),
            "available_amps": (round(self.tracker.available_amps, 2)
                               if self.tracker.available_amps is not None else None),
            "green_amps": decision.amps,
            "reason": decision.reason,
            "charging_allowed": self.tracker.on,
        })
        return status
