"""The plan in the daemon: every `interval_s` the whole plan is worked out again from the Tempo
calendar and the inverter's last reading (the same code as `python -m TWCManager.plan`); with
`[battery] automate`, a priority that differs from the plan is asked of the PI30 poller, which
writes it only if it still differs and reads it back. The same change is not asked again for
`retry_s` (a refusing inverter is not written to every 30 s), and nothing is asked while the
reading is stale (the current value is then unknown).
"""
from __future__ import annotations

import logging
from typing import Callable

from . import whole_plan
from .battery import BatterySpec, fallback_problem, next_peak_day

log = logging.getLogger("TWCManager.plan")

SETTINGS = (("output-priority", "output_priority", "output_reason"),
            ("charger-priority", "charger_priority", "charger_reason"))


class PlanRunner:
    def __init__(self, tempo, spec: BatterySpec, green_mode: str, inverter=None, *,
                 automate: bool = False, now: Callable, interval_s: float = 30.0,
                 retry_s: float = 600.0, forecast=None) -> None:
        self.tempo, self.spec, self.green_mode = tempo, spec, green_mode
        self.forecast = forecast          # forecast.ForecastService, or None
        self.inverter, self.automate = inverter, automate and inverter is not None
        self._now, self.interval_s, self.retry_s = now, interval_s, retry_s
        self.plan: dict | None = None
        self.fallback: str | None = None
        self._last_step: float | None = None
        self._version = -1
        self._asked: dict[str, tuple[str, float]] = {}     # what -> (value, at)
        self._logged_reasons: dict[str, str] = {}

    def step(self, mono: float) -> None:
        # Every interval_s, and at once when a colour changed (a manual override is shown in
        # the plan the next time the page asks).
        version = self.tempo.calendar.version
        if self._last_step is not None and mono - self._last_step < self.interval_s \
                and version == self._version:
            return
        self._last_step, self._version = mono, version
        status = self.inverter.status(mono) if self.inverter else None
        fresh = status if status and status.get("state") != "stale" else None
        now = self._now()
        forecast_kwh = None
        if self.forecast is not None:
            forecast_kwh = self.forecast.kwh(next_peak_day(now, self.tempo.prices))
        self.plan = whole_plan(now, self.tempo.calendar.colours(), self.tempo.prices,
                               self.spec, soc_pct=(fresh or {}).get("battery_soc_pct"),
                               forecast_kwh=forecast_kwh, green_mode=self.green_mode,
                               with_battery=self.inverter is not None)
        battery = self.plan["battery"]
        if battery is None:
            return
        problem = fallback_problem(battery["output_priority"], fresh, self.spec)
        if problem and problem != self.fallback:
            log.warning("Inverter: %s", problem)
        self.fallback = problem
        if self.automate and fresh is not None:
            for what, key, reason_key in SETTINGS:
                self._apply(what, battery[key], battery[reason_key], fresh.get(key), mono)

    def _apply(self, what: str, wanted: str, reason: str, current: str | None,
               mono: float) -> None:
        if current is None or current == wanted:
            self._asked.pop(what, None)
            return
        asked = self._asked.get(what)
        if asked and asked[0] == wanted and mono - asked[1] < self.retry_s:
            return
        log.info("Plan: %s %s -> %s (%s)", what, current, wanted, reason)
        try:
            self.inverter.request(what, wanted, f"plan: {reason}")
        except ValueError as exc:           # queue full: try again at the next step
            log.warning("Plan: %s %s not asked: %s", what, wanted, exc)
            return
        self._asked[what] = (wanted, mono)

    def status(self) -> dict | None:
        if self.plan is None:
            return None
        return {**self.plan, "automate": self.automate, "fallback": self.fallback,
                "forecast": self.forecast.status() if self.forecast else None}
