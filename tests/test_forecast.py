"""The solar forecast (TWCManager.forecast) against loopback fakes of Home Assistant's REST API
and forecast.solar: kWh per day, units, bad answers and an unreachable service (the plan then
counts no sun, and says so), and the forecast reaching the battery's target."""
from __future__ import annotations

import logging
from datetime import date, datetime

import pytest

from TWCManager.config import ConfigError, load_config
from TWCManager.forecast import (ForecastService, ForecastSolar, HomeAssistantForecast,
                                 forecast_from)
from TWCManager.httpjson import HttpJsonError
from TWCManager.tariff.tempo import PARIS

from .fake_http import FakeJsonServer

TODAY = date(2026, 12, 3)
TOKEN = "ha-long-lived-token"


def ha_routes(today="12.5", tomorrow="8400", unit_tomorrow="Wh") -> dict:
    return {
        "/api/states/sensor.energy_production_today": (200, {
            "entity_id": "sensor.energy_production_today", "state": today,
            "attributes": {"unit_of_measurement": "kWh"}}),
        "/api/states/sensor.energy_production_tomorrow": (200, {
            "entity_id": "sensor.energy_production_tomorrow", "state": tomorrow,
            "attributes": {"unit_of_measurement": unit_tomorrow}}),
    }


def ha(server) -> HomeAssistantForecast:
    return HomeAssistantForecast(server.url, TOKEN, "sensor.energy_production_today",
                                 "sensor.energy_production_tomorrow", timeout_s=2)


def test_home_assistant_entities_in_kwh_and_wh():
    with FakeJsonServer(ha_routes()) as server:
        assert ha(server).days_kwh(TODAY) == {TODAY: 12.5, date(2026, 12, 4): 8.4}
        assert all(headers.get("Authorization") == f"Bearer {TOKEN}"
                   for _, _, headers in server.requests)


@pytest.mark.parametrize("routes, message", [
    (ha_routes(tomorrow="unavailable"), "is 'unavailable', not a number"),
    (ha_routes(unit_tomorrow="W"), "expected energy"),
    (ha_routes(tomorrow="-3"), "expected energy"),
    ({}, "HTTP 404"),
])
def test_home_assistant_bad_answers_are_errors(routes, message):
    with FakeJsonServer(routes) as server:
        with pytest.raises(HttpJsonError, match=message):
            ha(server).days_kwh(TODAY)


def test_forecast_solar_days_and_errors():
    path = "/estimate/48.85/2.35/30/0/6"
    body = {"result": {"watt_hours_day": {"2026-12-03": 6400, "2026-12-04": 3100}},
            "message": {"code": 0, "type": "success"}}
    with FakeJsonServer({path: (200, body)}) as server:
        source = ForecastSolar(server.url, 48.85, 2.35, 30, 0, 6, timeout_s=2)
        assert source.days_kwh(TODAY) == {TODAY: 6.4, date(2026, 12, 4): 3.1}
        server.routes[path] = (429, {"message": {"code": 429, "text": "rate limit"}})
        with pytest.raises(HttpJsonError, match="HTTP 429"):
            source.days_kwh(TODAY)
        server.routes[path] = (200, {"result": "nope"})
        with pytest.raises(HttpJsonError, match="unexpected answer"):
            source.days_kwh(TODAY)


def test_the_service_keeps_the_last_good_figures_and_logs_a_failure_once(caplog):
    caplog.set_level(logging.INFO, logger="TWCManager.forecast")
    now = datetime(2026, 12, 3, 21, 0, tzinfo=PARIS)
    with FakeJsonServer(ha_routes()) as server:
        service = ForecastService(ha(server), lambda: TODAY, lambda: now)
        assert service.kwh(date(2026, 12, 4)) is None
        assert service.poll_once() and service.kwh(date(2026, 12, 4)) == 8.4
        server.routes.clear()
        assert not service.poll_once() and not service.poll_once()
        assert service.kwh(date(2026, 12, 4)) == 8.4           # the last good one is kept
        assert "HTTP 404" in service.status()["last_error"]
        assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
        server.routes.update(ha_routes(tomorrow="9000"))
        assert service.poll_once() and service.kwh(date(2026, 12, 4)) == 9.0
        assert service.status()["last_error"] is None
        assert any("answers again" in r.getMessage() for r in caplog.records)
    assert not service.poll_once()                               # unreachable now
    assert "unreachable" in service.status()["last_error"]


def test_configuration(tmp_path):
    from .fakes import FakeClock

    clock = FakeClock(datetime(2026, 12, 3, 21, 0, tzinfo=PARIS))
    assert forecast_from(load_config(None, {}), clock) is None
    token = tmp_path / "ha-token"
    token.write_text(TOKEN + "\n")
    cfg = load_config(None, {"forecast.source": "homeassistant",
                             "forecast.ha_token_file": str(token)})
    assert isinstance(forecast_from(cfg, clock).source, HomeAssistantForecast)
    token.write_text("")
    with pytest.raises(ConfigError, match="forecast.ha_token_file: .* is empty"):
        forecast_from(cfg, clock)
    with pytest.raises(ConfigError, match="needs forecast.latitude"):
        load_config(None, {"forecast.source": "forecast_solar"})


def test_the_forecast_lowers_the_battery_target_in_the_runner():
    from TWCManager.plan.battery import BatterySpec
    from TWCManager.plan.runner import PlanRunner
    from TWCManager.tariff.calendar import TempoCalendar
    from TWCManager.tariff.service import TempoService
    from TWCManager.tariff.tempo import TempoPrices

    from .fakes import FakeClock

    class Inverter:          # the poller's status as the runner reads it
        def status(self, now):
            return {"state": "ok", "battery_soc_pct": 30.0, "output_priority": "utility",
                    "charger_priority": "solar-only", "mode": "L"}

    clock = FakeClock(datetime(2026, 12, 3, 23, 0, tzinfo=PARIS))
    tempo = TempoService(TempoCalendar(), TempoPrices(), clock)
    tempo.calendar.learn(date(2026, 12, 4), "RED", "rte", clock.now())
    spec = BatterySpec(capacity_kwh=5, min_soc_pct=20, peak_load_kwh=3, forecast_share=0.8)
    with FakeJsonServer(ha_routes(tomorrow="2.5", unit_tomorrow="kWh")) as server:
        forecast = ForecastService(ha(server), lambda: TODAY, clock.now)
        runner = PlanRunner(tempo, spec, "solar", Inverter(), now=clock.now,
                            forecast=forecast)
        runner.step(0.0)
        assert runner.status()["battery"]["target_soc_pct"] == 80.0     # no forecast yet
        assert forecast.poll_once()
        runner.step(100.0)
        status = runner.status()
        assert status["battery"]["target_soc_pct"] == pytest.approx(40.0)   # 2 kWh of sun
        assert "2.0 kWh of the 2.5 kWh forecast" in status["battery"]["target_reason"]
        assert status["forecast"]["days_kwh"]["2026-12-04"] == 2.5
