"""The `solaredge` command (or any energy command) as the site meter, one process per reading.

* `parse_output`: the command's stdout (a bare integer = grid watts, as LennyBo's
  `solaredge -grid`; or JSON with grid_w / solar_w / house_w).
* `CommandSource`: runs the command every interval in its own thread with a timeout, so a
  slow or hung command never delays a heartbeat; keeps the last good reading.
"""
from __future__ import annotations

import json
import logging
import shlex
import subprocess
import threading
import time
from typing import Callable

from ..core.interfaces import MeterReading, reading_state

log = logging.getLogger("TWCManager.green")


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
        self._latest: MeterReading | None = None
        self.last_error: str | None = None
        self._announced: str | None = None   # the kind of problem last logged
        self.last_attempt_at: float | None = None
        self.failing_since_wall: float | None = None
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

    def read_once(self) -> MeterReading | None:
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
        return self._store(grid, solar, house)

    # Hooks shared with StreamSource (stream.py): keeping a good reading, counting a failure.

    def _store(self, grid: float, solar: float | None, house: float | None) -> MeterReading:
        if house is None and solar is not None:
            house = solar - grid
        reading = MeterReading(grid, solar, house, self._clock(), self._wall())
        with self._lock:
            self._latest = reading
            recovered = self.last_error is not None
            self.last_error, self.failing_since_wall = None, None
            self._announced = None
            self.reads += 1
        if recovered:
            log.info("Energy source answers again: grid %+.0f W", grid)
        return reading

    def _failed(self, error: str, kind: str = "failed") -> None:
        """Count a failure; log it once per kind of problem, not at every retry."""
        with self._lock:
            announce = self._announced != kind
            self._announced = kind
            self.last_error = error
            self.failures += 1
            if self.failing_since_wall is None:
                self.failing_since_wall = self._wall()
        if announce:
            log.error("Energy source %r failed: %s", self.command, error)
        return None

    def latest(self) -> MeterReading | None:
        with self._lock:
            return self._latest

    def status(self, now: float) -> dict:
        with self._lock:
            latest, error, since = self._latest, self.last_error, self.failing_since_wall
        fresh = latest is not None and now - latest.at <= self.stale_after_s
        return {
            "state": reading_state(fresh, error),
            "command": self.command,
            "last_reading_at": latest.at_wall if latest else None,
            "last_error": error,
            "failing_since": since,
            "reads": self.reads,
            "failures": self.failures,
        }
