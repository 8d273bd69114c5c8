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

    def now(self) -> datetime:       # core.interfaces.Clock
        return self.wall_time

    def advance(self, seconds: float) -> float:
        self.mono += seconds
        self.wall_time += timedelta(seconds=seconds)
        return self.mono


class PinnedGreen:
    """Green tracking pinned by a test: `amps(now, car_amps, min_amps, watts_per_amp)`
    gives the amps (None = no valid reading) or a GreenDecision, whatever the meter says."""

    def __init__(self, amps) -> None:
        self.amps = amps

    def decide(self, now, now_wall, readings, car_amps, min_amps, watts_per_amp,
               car_reported_at=None, pricing=None, car_limit_amps=None, mode=None):
        from TWCManager.core.green import GreenDecision

        answer = self.amps(now, car_amps, min_amps, watts_per_amp)
        if isinstance(answer, GreenDecision):
            return answer
        return GreenDecision(answer, "green energy" if answer is not None
                             else "no valid energy reading")


def make_home(clock=None, settings=None, limits=None, *, green=None, holds=None, saved=None,
              **master_kw):
    """A site core and an RS-485 engine wired as the daemon wires them, on a fake clock.
    `green`: a callable for PinnedGreen (default: no valid reading); `saved`: a list that
    collects the reasons the wall-clock rules saved the settings."""
    import random

    from TWCManager.core import policy
    from TWCManager.core.settings import Settings
    from TWCManager.core.site import Site, SiteDriver
    from TWCManager.ipc.status import Home
    from TWCManager.twc.master import Master

    clock = clock or FakeClock()
    limits = limits or policy.Limits(40, 40, 12)
    site = Site(settings or Settings(non_scheduled_amps=20), limits,
                green=PinnedGreen(green or (lambda *args: None)),
                holds=holds or policy.Holds())
    driver = SiteDriver(site, clock.wall,
                        on_changes=saved.append if saved is not None else lambda reason: None)
    master_kw.setdefault("rng", random.Random(7))
    return Home(site, Master(limits=limits, planner=driver, **master_kw))
