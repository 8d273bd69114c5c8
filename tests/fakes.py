"""Fake clocks shared by the pure tests: monotonic seconds plus a local wall clock."""
from __future__ import annotations

from datetime import datetime, timedelta


class FakeClock:
    def __init__(self, wall: datetime = datetime(2026, 11, 23, 12, 0, 0), mono: float = 1000.0):
        self.mono = mono
        self.wall_time = wall

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> datetime:
        return self.wall_time

    def advance(self, seconds: float) -> float:
        self.mono += seconds
        self.wall_time += timedelta(seconds=seconds)
        return self.mono
