"""The solar forecast for the plan (issue 12 point 4): kWh per day from Home Assistant's REST API
(an entity such as `sensor.energy_production_tomorrow`, a long-lived token read from a file) or
from forecast.solar's public API (latitude, longitude, declination, azimuth, kWp), polled in a
thread. When it fails, or there is none, the plan counts no sun (the careful default) and says so.
"""
from __future__ import annotations

import logging
import threading
import urllib.parse
import urllib.request
from datetime import date, datetime, timedelta
from typing import Callable, Protocol

from .httpjson import HttpJsonError, request_json

log = logging.getLogger("TWCManager.forecast")

RETRY_S = 300.0


class Source(Protocol):
    name: str

    def days_kwh(self, today: date) -> dict[date, float]: ...


class HomeAssistantForecast:
    """Two entities of HA's forecast (e.g. Forecast.Solar's integration), in kWh or Wh."""
    name = "homeassistant"

    def __init__(self, base_url: str, token: str, entity_today: str, entity_tomorrow: str,
                 timeout_s: float = 10.0) -> None:
        self.base_url, self.token = base_url.rstrip("/"), token
        self.entities = {0: entity_today, 1: entity_tomorrow}
        self.timeout_s = timeout_s

    def days_kwh(self, today: date) -> dict[date, float]:
        out = {}
        for offset, entity in self.entities.items():
            if not entity:
                continue
            body = request_json(urllib.request.Request(
                f"{self.base_url}/api/states/{urllib.parse.quote(entity)}",
                headers={"Authorization": f"Bearer {self.token}",
                         "Accept": "application/json"}), self.timeout_s, "Home Assistant")
            out[today + timedelta(days=offset)] = _kwh(entity, body)
        return out


def _kwh(entity: str, body: dict) -> float:
    state = body.get("state")
    unit = (body.get("attributes") or {}).get("unit_of_measurement", "kWh")
    try:
        value = float(state)
    except (TypeError, ValueError):
        raise HttpJsonError(f"Home Assistant: {entity} is {state!r}, not a number") from None
    scale = {"kWh": 1.0, "Wh": 0.001, "MWh": 1000.0}.get(unit)
    if scale is None or not 0 <= value * scale < 10_000:
        raise HttpJsonError(f"Home Assistant: {entity} = {state} {unit}: expected energy")
    return value * scale


class ForecastSolar:
    """forecast.solar's public estimate: /estimate/LAT/LON/DEC/AZ/KWP, watt_hours_day."""
    name = "forecast_solar"

    def __init__(self, base_url: str, latitude: float, longitude: float, declination: float,
                 azimuth: float, kwp: float, timeout_s: float = 10.0) -> None:
        self.url = (f"{base_url.rstrip('/')}/estimate/{latitude:g}/{longitude:g}/"
                    f"{declination:g}/{azimuth:g}/{kwp:g}")
        self.timeout_s = timeout_s

    def days_kwh(self, today: date) -> dict[date, float]:
        body = request_json(urllib.request.Request(self.url, headers={
            "Accept": "application/json"}), self.timeout_s, "forecast.solar")
        try:
            days = body["result"]["watt_hours_day"]
            return {date.fromisoformat(day): float(wh) / 1000.0 for day, wh in days.items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise HttpJsonError(f"forecast.solar: unexpected answer ({exc!r})") from None


class ForecastService:
    """Polls a source every `interval_s` (RETRY_S after a failure); `kwh(day)` is the last
    good figure for that day, or None."""

    def __init__(self, source: Source, today: Callable[[], date],
                 now: Callable[[], datetime], interval_s: float = 3600.0) -> None:
        self.source, self._today, self._now = source, today, now
        self.interval_s = interval_s
        self._days: dict[date, float] = {}
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.learnt_at: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def kwh(self, day: date) -> float | None:
        with self._lock:
            return self._days.get(day)

    def poll_once(self) -> bool:
        try:
            days = self.source.days_kwh(self._today())
        except HttpJsonError as exc:
            if str(exc) != self.last_error:
                log.error("Solar forecast: %s (planning with no sun)", exc)
            self.last_error = str(exc)
            return False
        with self._lock:
            self._days = days
        if self.last_error:
            log.info("Solar forecast answers again")
        self.last_error, self.learnt_at = None, self._now().isoformat(timespec="seconds")
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="forecast", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            ok = self.poll_once()
            self._stop.wait(self.interval_s if ok else min(RETRY_S, self.interval_s))

    def status(self) -> dict:
        with self._lock:
            days = {day.isoformat(): round(kwh, 2) for day, kwh in sorted(self._days.items())}
        return {"source": self.source.name, "days_kwh": days, "learnt_at": self.learnt_at,
                "last_error": self.last_error}


def forecast_from(cfg, clock) -> ForecastService | None:
    """The forecast `[forecast]` describes, or None."""
    from .config import read_secret

    f = cfg.forecast
    if f.source == "none":
        return None
    if f.source == "homeassistant":
        token = read_secret(f.ha_token_file, "forecast.ha_token_file")
        source: Source = HomeAssistantForecast(f.ha_url, token, f.ha_entity_today,
                                               f.ha_entity_tomorrow, f.timeout_s)
    else:
        source = ForecastSolar(f.forecast_solar_url, f.latitude, f.longitude, f.declination,
                               f.azimuth, f.kwp, f.timeout_s)
    from .tariff.tempo import PARIS

    return ForecastService(source, lambda: clock.now().astimezone(PARIS).date(), clock.now,
                           f.interval_s)
