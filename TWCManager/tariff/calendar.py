"""The Tempo calendar as learnt: each day's colour with its source and when it was learnt, the
user's manual overrides kept apart (clearing one brings back what the sources said), and a
cache file that survives restarts.

A less trusted source never overwrites a more trusted one (tempo.md §2): RTE's API and the
Linky meter both publish the official colour; a keyless community service is a guess of
someone else's. A manual override beats every source while it is set.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from .tempo import COLOURS

log = logging.getLogger("TWCManager.tempo")

TRUST = {"community": 1, "rte": 2, "linky": 2}
MANUAL = "manual"
KEEP_DAYS = 400                    # a whole season back, for the red-days count
MAX_CACHE_BYTES = 256 * 1024
CACHE_VERSION = 1


@dataclass(frozen=True)
class DayColour:
    colour: str
    source: str
    learnt_at: str          # ISO 8601, aware


class TempoCalendar:
    """Thread-safe: the poller writes, IPC requests and the site step read."""

    def __init__(self, cache_file: str | os.PathLike | None = None) -> None:
        self.cache_file = Path(cache_file) if cache_file else None
        self._lock = threading.Lock()
        self._days: dict[date, DayColour] = {}
        self._manual: dict[date, DayColour] = {}
        self.cache_error: str | None = None
        self.version = 0      # counts changes: a plan made from an older one is out of date

    # ------------------------------------------------------------------ reading

    def get(self, day: date) -> DayColour | None:
        with self._lock:
            return self._manual.get(day) or self._days.get(day)

    def colours(self) -> dict[date, str]:
        """Every known day's colour, overrides applied (for the season rules and prices)."""
        with self._lock:
            merged = {**self._days, **self._manual}
        return {day: entry.colour for day, entry in merged.items()}

    # ------------------------------------------------------------------ writing

    def learn(self, day: date, colour: str, source: str, at: datetime) -> bool:
        """Record a colour from a source; False when refused or unchanged."""
        if colour not in COLOURS or source not in TRUST:
            raise ValueError(f"bad Tempo entry {day} {colour!r} from {source!r}")
        with self._lock:
            old = self._days.get(day)
            if old is not None and (TRUST.get(old.source, 0) > TRUST[source]
                                    or old.colour == colour):
                return False
            self._days[day] = DayColour(colour, source, at.isoformat(timespec="seconds"))
            self.version += 1
        if old is not None:
            log.warning("Tempo %s: %s (%s) replaces %s (%s)", day, colour, source, old.colour,
                        old.source)
        else:
            log.info("Tempo %s: %s (from %s)", day, colour, source)
        self.save()
        return True

    def override(self, day: date, colour: str | None, at: datetime) -> None:
        """The user's colour for a day; None clears it (the sources' colour shows again)."""
        if colour is not None and colour not in COLOURS:
            raise ValueError(f"{colour!r}: expected one of {', '.join(COLOURS)} or auto")
        with self._lock:
            if colour is None:
                self._manual.pop(day, None)
            else:
                self._manual[day] = DayColour(colour, MANUAL, at.isoformat(timespec="seconds"))
            self.version += 1
        log.info("Tempo %s: manual override %s", day, colour or "cleared")
        self.save()

    def forget_before(self, day: date) -> None:
        with self._lock:
            for table in (self._days, self._manual):
                for old in [d for d in table if d < day]:
                    del table[old]

    # ------------------------------------------------------------------ the cache file

    def save(self) -> None:
        if self.cache_file is None:
            return
        with self._lock:
            body = {"version": CACHE_VERSION,
                    "days": {d.isoformat(): asdict(e) for d, e in sorted(self._days.items())},
                    "manual": {d.isoformat(): asdict(e) for d, e in sorted(self._manual.items())}}
        tmp = self.cache_file.with_name(self.cache_file.name + ".tmp")
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(body, indent=1))
            os.replace(tmp, self.cache_file)     # never a half-written cache
            self.cache_error = None
        except OSError as exc:
            if self.cache_error is None:
                log.error("Cannot write the Tempo cache %s: %s", self.cache_file, exc)
            self.cache_error = f"cannot write {self.cache_file}: {exc.strerror}"

    def load(self, today: date) -> int:
        """Read the cache; a missing file is an empty calendar, a bad one is logged and
        ignored (the sources fill it again). Returns the number of days read."""
        if self.cache_file is None or not self.cache_file.exists():
            return 0
        try:
            with open(self.cache_file, "rb") as handle:
                raw = handle.read(MAX_CACHE_BYTES + 1)
            if len(raw) > MAX_CACHE_BYTES:
                raise ValueError(f"larger than {MAX_CACHE_BYTES} bytes")
            body = json.loads(raw)
            days = _entries(body.get("days", {}))
            manual = _entries(body.get("manual", {}))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            self.cache_error = f"ignored {self.cache_file}: {exc}"
            log.error("Tempo cache: %s", self.cache_error)
            return 0
        with self._lock:
            self._days.update(days)
            self._manual.update(manual)
            self.version += 1
        self.forget_before(today - timedelta(days=KEEP_DAYS))
        return len(days) + len(manual)


def _entries(table: dict) -> dict[date, DayColour]:
    out = {}
    for key, entry in table.items():
        entry = DayColour(**entry)
        if entry.colour not in COLOURS or (entry.source not in TRUST and entry.source != MANUAL):
            raise ValueError(f"{key}: bad entry {entry}")
        datetime.fromisoformat(entry.learnt_at)
        out[date.fromisoformat(key)] = entry
    return out
