"""`/api/v1/` and the dashboard's inverter form, end to end: the Flask app through the real
IpcClient to a real daemon (tests/test_daemon_pty.Rig) polling the PI30 simulator on a pty;
plus the pure mapping of getStatusJson to /api/v1/state, and the bearer token."""
from __future__ import annotations

import json
import re

import pytest
from werkzeug.security import generate_password_hash

from TWCManager.config import ConfigError, load_config
from TWCManager.ipc_client import IpcClient
from www import create_app, inverter
from TWCManager.ipc.state_v1 import api_state

from .fake_peer import status_json_one_twc
from .test_daemon_pty import Rig, charging_unit

TOKEN = "0123456789abcdef0123456789abcdef"
PI30 = {"pi30.interval_s": 0.5, "pi30.timeout_s": 0.5}


def make_app(ipc_path, wait_s: float = 10.0, **overrides):
    cfg = load_config(None, {"ipc.path": str(ipc_path), "web.ipc_timeout_s": 2.0, **overrides})
    app = create_app(cfg, peer=IpcClient(ipc_path))
    app.config[inverter.WAIT_KEY] = wait_s
    return app


@pytest.fixture
def rig(tmp_path, pi30_sim):
    sim, port = pi30_sim
    with Rig(tmp_path, [charging_unit()], **{"pi30.port": port, **PI30}) as running:
        running.sim = sim
        yield running


def pops(sim) -> list[str]:
    return [r for r in sim.requests if r.startswith(("POP", "PCP"))]


def state_when(client, predicate, timeout_s: float = 10.0) -> dict:
    from .util import wait_until

    seen = {}

    def check():
        seen.update(client.get("/api/v1/state").get_json())
        return predicate(seen)
    assert wait_until(check, timeout_s=timeout_s), seen
    return seen


# ------------------------------------------------------------------ the mapping (pure)

INVERTER_OK = {"state": "ok", "port": "/dev/ttyPI30", "last_update_at": 1.8e9, "last_error": None,
               "last_change": None, "changes": [], "mode": "B", "mode_name": "battery",
               "grid_v": 230.1, "ac_out_w": 500, "battery_v": 52.4, "battery_soc_pct": 66,
               "battery_w": -120.5, "pv_w": 1500, "output_priority": "sbu",
               "charger_priority": "solar-only", "warnings": ["line fail"]}


def test_state_has_every_contract_key_as_numbers_with_units():
    status = status_json_one_twc()
    status["inverter"] = INVERTER_OK
    state = api_state(status)
    for key in ("solar_w", "grid_w", "house_w", "car_w", "mode", "reason", "tempo_today",
                "tempo_tomorrow", "price_eur_kwh", "battery_soc_pct", "battery_v",
                "inverter_output_priority", "inverter_charger_priority", "inverter_mode",
                "chargers"):
        assert key in state, key
    assert (state["battery_soc_pct"], state["battery_v"], state["battery_w"]) == (66, 52.4, -120.5)
    assert (state["inverter_mode"], state["inverter_output_priority"],
            state["inverter_charger_priority"]) == ("B", "sbu", "solar-only")
    assert state["inverter_warnings"] == ["line fail"] and state["inverter_load_w"] == 500
    unit = status["slaves"][0]
    assert state["chargers"] == [{
        "id": unit["twcid"], "state": unit["state"], "state_name": "charging",
        "amps_offered": unit["offered_amps"], "amps_drawn": unit["actual_amps"],
        "amps_max": unit["max_amps"], "volts": unit["volts"], "lifetime_kwh": unit["kwh"],
        "session_kwh": unit["session_kwh"], "offer_reason": unit["offer_reason"],
        "seconds_since_heard": unit["seconds_since_heard"]}]
    assert state["car_w"] == round(unit["actual_amps"] * status["watts_per_amp"])
    assert state["mode"] == status["pool_source"] and state["reason"] == status["pool_reason"]
    # No tariff yet (issue 12): the Tempo keys are there, and null.
    assert (state["tempo_today"], state["tempo_tomorrow"], state["price_eur_kwh"]) == (None,) * 3
    json.dumps(state, allow_nan=False)     # plain JSON: no NaN, no objects


def test_stale_or_absent_readings_are_null_never_zero():
    status = status_json_one_twc()
    status["green"] = {"state": "stale", "solar_w": 3000.0, "grid_w": 1200.0, "house_w": 800,
                       "car_w": 0, "last_reading_at": 1.7e9}
    status["inverter"] = {"state": "stale", "port": "/dev/ttyPI30", "last_update_at": 1.7e9,
                          "last_error": "no answer within 3 s", "changes": []}
    state = api_state(status)
    assert (state["solar_w"], state["grid_w"], state["house_w"]) == (None, None, None)
    assert state["meter_state"] == "stale" and state["meter_reading_at"] == 1.7e9
    assert all(state[key] is None for key in ("battery_soc_pct", "battery_v", "inverter_pv_w",
                                              "inverter_mode", "inverter_output_priority"))
    assert state["inverter_state"] == "stale" and "no answer" in state["inverter_error"]

    status["inverter"] = None                       # no inverter configured
    assert api_state(status)["inverter_state"] is None
    status["green"] = {"state": "ok", "solar_w": 0.0, "grid_w": -10.0, "house_w": -350,
                       "car_w": 0}
    assert api_state(status)["house_w"] == 0        # a timing mismatch is not a negative house


# ------------------------------------------------------------------ live: daemon + simulator

def test_state_and_priorities_over_api_v1(rig):
    client = make_app(rig.ipc_path).test_client()
    state = state_when(client, lambda s: s["inverter_state"] == "ok" and s["chargers"])
    assert (state["battery_soc_pct"], state["inverter_load_w"]) == (66, 500)
    assert (state["inverter_mode"], state["inverter_output_priority"]) == ("B", "sbu")
    assert state["chargers"][0]["id"] == "032E" and state["inverter_reading_at"] is not None

    response = client.post("/api/v1/inverter/output_priority", json={"value": "utility"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["message"] == "output-priority set to utility (was sbu; read back)"
    assert rig.sim.model.output_priority == 0
    writes = pops(rig.sim)
    again = client.post("/api/v1/inverter/output_priority", json={"value": "utility"})
    assert again.status_code == 200 and "nothing sent" in again.get_json()["message"]
    assert pops(rig.sim) == writes                     # already in force: not written again
    state_when(client, lambda s: s["inverter_output_priority"] == "utility")

    response = client.post("/api/v1/inverter/charger_priority", json={"value": "solar"})
    assert response.status_code == 200 and rig.sim.model.charger_priority == 1

    for body, message in (({"value": "battery"}, "expected one of utility, solar, sbu"),
                          ({"value": 2}, "send {\"value\": …}"), ([], "not a JSON object")):
        bad = client.post("/api/v1/inverter/output_priority", json=body)
        assert bad.status_code == 400 and message in bad.get_json()["error"], bad.get_json()
    wrong_type = client.post("/api/v1/inverter/output_priority", data="value=sbu")
    assert wrong_type.status_code == 400
    assert pops(rig.sim) == writes + ["PCP01"]           # no bad request reached the inverter
    assert client.get("/api/v1/inverter/output_priority").status_code == 405

    rig.sim.nak_all = True                     # the inverter refuses: the caller is told
    refused = client.post("/api/v1/inverter/output_priority", json={"value": "sbu"})
    assert refused.status_code == 502 and "refused" in refused.get_json()["error"]
    rig.sim.nak_all = False


def test_the_dashboard_form_changes_a_priority_with_csrf(rig):
    client = make_app(rig.ipc_path).test_client()
    page = client.get("/").get_data(as_text=True)
    assert 'action="/inverter"' in page and 'value="solar-only"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    forged = client.post("/inverter", data={"what": "output-priority", "value": "utility"})
    assert forged.status_code == 403
    cross = client.post("/inverter", headers={"Sec-Fetch-Site": "cross-site"},
                        data={"csrf_token": token, "what": "output-priority", "value": "utility"})
    assert cross.status_code == 403 and pops(rig.sim) == []

    done = client.post("/inverter", data={"csrf_token": token, "what": "output-priority",
                                          "value": "utility"}, follow_redirects=True)
    assert "Inverter: output-priority set to utility (was sbu; read back)" in \
        done.get_data(as_text=True)
    assert rig.sim.model.output_priority == 0

    bad = client.post("/inverter", data={"csrf_token": token, "what": "output-priority",
                                         "value": "battery"}, follow_redirects=True)
    assert "expected one of utility, solar, sbu" in bad.get_data(as_text=True)
    assert pops(rig.sim) == ["POP00"]


def test_a_silent_inverter_is_a_502_and_a_stale_state(rig):
    client = make_app(rig.ipc_path).test_client()
    state_when(client, lambda s: s["inverter_state"] == "ok")
    rig.sim.silent = True
    response = client.post("/api/v1/inverter/output_priority", json={"value": "solar"})
    assert response.status_code == 502 and "no answer" in response.get_json()["error"]
    state = state_when(client, lambda s: s["inverter_state"] == "stale", timeout_s=15)
    assert state["battery_soc_pct"] is None and state["inverter_output_priority"] is None


def test_without_an_inverter_the_change_is_409_and_the_panel_data_null(tmp_path):
    with Rig(tmp_path, [charging_unit()]) as rig:
        client = make_app(rig.ipc_path).test_client()
        assert client.get("/api/getInverterStatus").get_json() is None
        assert client.get("/api/v1/state").get_json()["inverter_state"] is None
        response = client.post("/api/v1/inverter/output_priority", json={"value": "sbu"})
        assert response.status_code == 409
        assert "no PI30 inverter configured" in response.get_json()["error"]


def test_daemon_down_is_503(tmp_path):
    from .util import free_ipc_dir, remove_queue_for

    path = free_ipc_dir(tmp_path)
    try:
        client = make_app(path, **{"web.ipc_timeout_s": 0.3}).test_client()
        assert client.get("/api/v1/state").status_code == 503
        assert client.post("/api/v1/inverter/output_priority",
                           json={"value": "sbu"}).status_code == 503
    finally:
        remove_queue_for(path)


# ------------------------------------------------------------------ the bearer token

def test_api_v1_requires_the_bearer_token_when_configured(tmp_path, daemon):
    token_file = tmp_path / "api-token"
    token_file.write_text(TOKEN + "\n")
    app = make_app(daemon.path, **{"web.api_token_file": str(token_file),
                                   "web.username": "garage",
                                   "web.password_hash": generate_password_hash("pw")})
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": "Bearer " + TOKEN[:-1] + "é"}):
        response = client.get("/api/v1/state", headers=headers)
        assert response.status_code == 401, headers
        assert "api_token_file" in response.get_json()["error"]
    ok = client.get("/api/v1/state", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.get_json()["chargers"][0]["id"] == "032E"
    # The token opens /api/v1/ only; the pages keep their basic auth.
    assert client.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401


@pytest.mark.parametrize("content", [None, "", "short\n"])
def test_a_missing_or_empty_token_file_stops_the_web_app(tmp_path, daemon, content):
    token_file = tmp_path / "api-token"
    if content is not None:
        token_file.write_text(content)
    with pytest.raises(ConfigError, match="web.api_token_file"):
        make_app(daemon.path, **{"web.api_token_file": str(token_file)})
    from www.__main__ import main

    config = tmp_path / "twc.toml"
    config.write_text(f'[web]\napi_token_file = "{token_file}"\n[ipc]\npath = "{daemon.path}"\n')
    assert main(["--config", str(config)]) == 2


def test_status_for_a_person_says_unknown_and_stale_not_zero():
    from TWCManager.ipc.describe import describe_status

    status = status_json_one_twc()
    status["inverter"] = INVERTER_OK
    text = describe_status(status)
    assert "Charger 032E: charging, 15.50 A drawn of 16 A offered, 231/229/230 V, 1234 kWh" in text
    assert "Inverter: battery 66 %, 52.40 V, discharging 120 W; PV 1.50 kW, load 500 W" in text
    status["inverter"] = {"state": "stale", "last_update_at": None,
                          "last_error": "no answer within 3 s"}
    status["green"] = {"state": "stale", "last_reading_at": None, "last_error": "exit status 1"}
    text = describe_status(status)
    assert "Inverter: no answer since never (no answer within 3 s)" in text
    assert "Sun: no valid reading since never (exit status 1)" in text
    assert " 0 W" not in text
