"""The home's history in SQLite (standard library): the energy totals that only grow (solar,
bought, exported, the car's sun and grid kWh, bought per price), the same per day, and one point
a minute for 30 days; they survive restarts (issues 13 and 14).

`EnergyRecorder.step()` runs in the daemon's loop and only adds numbers in memory (an
`EnergyBook`); a writer thread stores them once a minute in one transaction (a Pi's SD card
prefers few, batched writes) and at stop. A database that cannot be opened or written is logged
once and the totals go on in memory: history never stalls the loop.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

from .core.energy_book import EnergyBook
from .core.interfaces import MeterReading

log = logging.getLogger("TWCManager.history")

FLUSH_S = 60.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS totals (name TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS days (day TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
                                 PRIMARY KEY (day, name));
CREATE TABLE IF NOT EXISTS minutes (t INTEGER PRIMARY KEY, solar_w REAL, house_w REAL,
                                    car_w REAL, grid_w REAL);
CREATE TABLE IF NOT EXISTS sessions (charger TEXT NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
                                     kwh REAL NOT NULL, PRIMARY KEY (charger, start));
"""


def reading_time(reading: MeterReading) -> datetime:
    return datetime.fromtimestamp(reading.at_wall).astimezone()


class EnergyRecorder:
    def __init__(self, path: str | Path | None, *, keep_days: int = 30,
                 local_day: Callable[[float], str] = lambda t: datetime.fromtimestamp(t)
                 .date().isoformat()) -> None:
        self.path = Path(path) if path else None
        self.keep_days = keep_days
        self.local_day = local_day
        self.book = EnergyBook()
        self._lock = threading.Lock()
        self._days: dict[tuple[str, str], float] = {}
        self._minutes: dict[int, tuple] = {}
        self._sessions: list[tuple[str, float, float, float]] = []
        self._last_reading_at: float | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the loop's side

    def is_new(self, reading: MeterReading | None) -> bool:
        return reading is not None and reading.at_wall != self._last_reading_at

    def step(self, reading: MeterReading | None, car_w: float,
             price: tuple[str, float | None] | None = None) -> None:
        """Book a new meter reading (each once) with the cars' draw and the price now."""
        if reading is None or reading.at_wall == self._last_reading_at:
            return
        self._last_reading_at = reading.at_wall
        label, eur = price if price else (None, None)
        with self._lock:
            added = self.book.add(reading.at_wall, reading.grid_w, reading.solar_w, car_w,
                                  label, eur)
            day = self.local_day(reading.at_wall)
            for name, kwh in added.items():
                self._days[(day, name)] = self._days.get((day, name), 0.0) + kwh
            house = None if reading.house_w is None else max(reading.house_w - car_w, 0.0)
            self._minutes[int(reading.at_wall // 60) * 60] = (
                reading.solar_w, house, car_w, reading.grid_w)

    def add_sessions(self, ended: list[tuple[str, float, float, float]]) -> None:
        """Charging sessions that ended: (charger id, start, end, kWh)."""
        with self._lock:
            self._sessions.extend(ended)

    def totals(self) -> dict:
        with self._lock:
            return self.book.snapshot()

    # ------------------------------------------------------------------ the store

    def start(self) -> None:
        self._load()
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout_s)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_S):
            self.flush()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=5)
        db.executescript(SCHEMA)
        return db

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            with self._connect() as db:
                rows = db.execute("SELECT name, value FROM totals").fetchall()
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            return
        with self._lock:
            for name, value in rows:
                if name == "import_cost_eur":
                    self.book.cost_eur = value
                elif name in self.book.totals:
                    self.book.totals[name] = value
                else:
                    self.book.bought[name] = value

    def flush(self) -> None:
        if self.path is None:
            return
        with self._lock:
            totals = self.book.snapshot()
            days, self._days = self._days, {}
            minutes, self._minutes = self._minutes, {}
            sessions, self._sessions = self._sessions, []
        try:
            db = self._connect()
            try:
                with db:
                    db.executemany("INSERT OR REPLACE INTO totals VALUES (?, ?)", totals.items())
                    db.executemany(
                        "INSERT INTO days VALUES (?, ?, ?) ON CONFLICT (day, name) "
                        "DO UPDATE SET value = value + excluded.value",
                        [(day, name, kwh) for (day, name), kwh in days.items()])
                    db.executemany("INSERT OR REPLACE INTO minutes VALUES (?, ?, ?, ?, ?)",
                                   [(t, *values) for t, values in minutes.items()])
                    db.executemany("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)",
                                   sessions)
                    db.execute("DELETE FROM minutes WHERE t < ?",
                               (time.time() - self.keep_days * 86400,))
            finally:
                db.close()
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            with self._lock:            # nothing is lost: kept for the next flush
                for key, kwh in days.items():
                    self._days[key] = self._days.get(key, 0.0) + kwh
                self._minutes = {**minutes, **self._minutes}
                self._sessions = sessions + self._sessions
            return
        if self.error:
            log.info("History: %s is written again", self.path)
        self.error = None

    def _failed(self, exc: Exception) -> None:
        message = f"{self.path}: {exc}"
        if message != self.error:
            log.error("History: cannot use %s (the totals go on in memory)", message)
        self.error = message

    # ------------------------------------------------------------------ reading back

    # Reads merge what is stored with what waits for the next write: no write on a read, so a
    # page asking for the chart never waits for the SD card.

    def day_totals(self, since_day: str = "") -> dict[str, dict[str, float]]:
        rows = self._read("SELECT day, name, value FROM days WHERE day >= ?", (since_day,))
        out: dict[str, dict[str, float]] = {}
        for day, name, value in rows:
            out.setdefault(day, {})[name] = value
        with self._lock:
            pending = dict(self._days)
        for (day, name), kwh in pending.items():
            if day >= since_day:
                out.setdefault(day, {})[name] = out.get(day, {}).get(name, 0.0) + kwh
        return {day: {name: round(v, 4) for name, v in names.items()}
                for day, names in sorted(out.items())}

    def minutes(self, since_wall: float) -> list[dict]:
        rows = {t: values for t, *values in self._read(
            "SELECT t, solar_w, house_w, car_w, grid_w FROM minutes WHERE t >= ?",
            (since_wall,))}
        with self._lock:
            rows.update({t: list(v) for t, v in self._minutes.items() if t >= since_wall})
        return [dict(zip(("t", "solar_w", "house_w", "car_w", "grid_w"), [t, *rows[t]]))
                for t in sorted(rows)]

    def sessions(self, since_wall: float) -> list[dict]:
        rows = self._read("SELECT charger, start, end, kwh FROM sessions WHERE end >= ?",
                          (since_wall,))
        with self._lock:
            rows = rows + [s for s in self._sessions if s[2] >= since_wall]
        return [dict(zip(("charger", "start", "end", "kwh"), row))
                for row in sorted(set(map(tuple, rows)), key=lambda r: r[1])]

    def _read(self, sql: str, args: tuple) -> list:
        if self.path is None or not self.path.exists():
            return []
        try:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2)
            try:
                return db.execute(sql, args).fetchall()
            finally:
                db.close()
        except sqlite3.Error as exc:
            self._failed(exc)
            return []
