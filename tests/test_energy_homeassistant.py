"""A grid meter that lives in Home Assistant, against a loopback fake of HA's REST API: watts
with HA's sign turned to ours, kW, an entity that stopped reporting (HA keeps its last value) or
is unavailable counts as a failed reading, the token is sent; and the daemon green-tracking on it
with the same stale fail-safe."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from TWCManager.config import ConfigError, load_config
from TWCManager.energy.homeassistant import HomeAssistantMeter

from .fake_http import FakeJsonServer

NOW = 1_800_000_000.0
TOKEN = "ha-meter-token"


def entity(state, unit="W", reported_s_ago=1.0):
    at = datetime.fromtimestamp(NOW - reported_s_ago, timezone.utc).isoformat()
    return (200, {"state": state, "attributes": {"unit_of_measurement": unit},
                  "last_updated": at, "last_reported": at})


def meter(server, **kw) -> HomeAssistantMeter:
    return HomeAssistantMeter(server.url, TOKEN, "sensor.grid_power", interval_s=2,
                              stale_after_s=120, timeout_s=2, clock=lambda: 1000.0,
                              wall=lambda: NOW, **kw)


def test_import_positive_becomes_our_export_positive_and_kw_is_read():
    routes = {"/api/states/sensor.grid_power": entity("1250"),
              "/api/states/sensor.pv_power": entity("3.4", "kW")}
    with FakeJsonServer(routes) as server:
        reading = meter(server, solar_entity="sensor.pv_power").read_once()
        assert (reading.grid_w, reading.solar_w, reading.house_w) == (-1250.0, 3400.0, 4650.0)
        assert meter(server, export_positive=True).read_once().grid_w == 1250.0
        assert all(h.get("Authorization") == f"Bearer {TOKEN}" for _, _, h in server.requests)


@pytest.mark.parametrize("answer, message", [
    (entity("unavailable"), "expected a power in W or kW"),
    (entity("12", "kWh"), "expected a power in W or kW"),
    (entity("800", reported_s_ago=600), "has not reported for 600 s"),
    ((401, {"message": "401: Unauthorized"}), "HTTP 401"),
])
def test_bad_or_silent_entities_are_failed_readings(answer, message):
    with FakeJsonServer({"/api/states/sensor.grid_power": answer}) as server:
        source = meter(server)
        assert source.read_once() is None
        assert message in source.last_error and source.latest() is None
        assert source.status(1000.0)["state"] == "stale"


def test_configuration_needs_a_token(tmp_path):
    with pytest.raises(ConfigError, match="green.ha_grid_entity needs green.ha_token_file"):
        load_config(None, {"green.ha_grid_entity": "sensor.grid_power"})


def test_the_daemon_tracks_green_on_a_home_assistant_meter(tmp_path):
    from TWCManager.ipc_client import IpcClient

    from .test_daemon_pty import Rig, charging_unit
    from .util import wait_until

    token = tmp_path / "ha-token"
    token.write_text(TOKEN + "\n")
    now = datetime.now(timezone.utc).isoformat()
    routes = {"/api/states/sensor.grid_power": (200, {
        "state": "-2300", "attributes": {"unit_of_measurement": "W"},
        "last_updated": now, "last_reported": now})}
    from TWCManager.core.settings import Settings

    with FakeJsonServer(routes) as server, Rig(
            tmp_path, [charging_unit()], Settings(non_scheduled_amps=-1), **{
                "green.ha_grid_entity": "sensor.grid_power", "green.ha_url": server.url,
                "green.ha_token_file": str(token), "green.interval_s": 0.5,
                "green.start_hour": 0, "green.end_hour": 24}) as rig:
        client = IpcClient(rig.ipc_path)

        def green():
            return json.loads(client.query("getGreenStatus", timeout_s=5, packets=True))
        assert wait_until(lambda: green().get("grid_w") == 2300.0, timeout_s=10), green()
        assert green()["state"] == "ok" and "sensor.grid_power" in green()["command"]
        server.routes.clear()                          # HA goes away: failing, then stale
        assert wait_until(lambda: green()["state"] == "failing", timeout_s=10), green()
        assert "HTTP 404" in green()["last_error"]
