"""`POST /api/v1/…` for the charging commands (issue 13 point 1), through the real IpcClient to
the stand-in daemon on a private SysV queue: each sends exactly the daemon commands the web page
sends, a bad body sends nothing and says why, and the daemon down is a 503."""
from __future__ import annotations

import pytest

from .test_www import BOOST_SETS, make_app, sent


@pytest.fixture
def client(daemon):
    return make_app(daemon, **{"twc.wiring_max_amps_all_twcs": 32,
                               "twc.wiring_max_amps_per_twc": 32}).test_client()


@pytest.mark.parametrize("path, body, expected", [
    ("/api/v1/boost", None, BOOST_SETS + ["chargeNow"]),
    ("/api/v1/eco", None, BOOST_SETS + ["chargeNowCancel"]),
    ("/api/v1/charge_now", {"amps": 16, "duration_s": 3600}, ["chargeNow=16,3600"]),
    ("/api/v1/charge_now/cancel", None, ["chargeNowCancel"]),
    ("/api/v1/non_scheduled_amps", {"amps": -1}, ["setNonScheduledAmps=-1"]),
    ("/api/v1/non_scheduled_amps", {"amps": 0}, ["setNonScheduledAmps=0"]),
    ("/api/v1/schedule", {"amps": 16, "start": "22:00", "end": "06:00", "days": 62},
     ["setScheduledAmps=16\nstartTime=22:00\nendTime=06:00\ndays=62"]),
    ("/api/v1/schedule", {"amps": 0, "start": "22:00", "end": "06:00", "days": 127},
     ["setScheduledAmps=-1\nstartTime=22:00\nendTime=06:00\ndays=127"]),
    ("/api/v1/resume_green_at", {"time": "06:30"}, ["setResumeTrackGreenEnergyTime=06:30"]),
    ("/api/v1/resume_green_at", {"time": None}, ["setResumeTrackGreenEnergyTime=-1:00"]),
])
def test_each_command_sends_what_the_page_sends(client, daemon, path, body, expected):
    response = client.post(path, json=body) if body is not None else client.post(path)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["sent"] == expected
    assert sent(daemon) == expected


@pytest.mark.parametrize("path, body, message", [
    ("/api/v1/charge_now", {"amps": 33, "duration_s": 60}, "amps must be between 1 and 32"),
    ("/api/v1/charge_now", {"amps": 16}, "duration_s must be a whole number"),
    ("/api/v1/charge_now", {"amps": 6.5, "duration_s": 60}, "amps must be a whole number"),
    ("/api/v1/charge_now", {"amps": True, "duration_s": 60}, "amps must be a whole number"),
    ("/api/v1/non_scheduled_amps", {"amps": -2}, "between -1 and 32"),
    ("/api/v1/schedule", {"amps": 16, "start": "25:00", "end": "06:00", "days": 127},
     "start must be a time"),
    ("/api/v1/schedule", {"amps": 16, "start": "06:00", "end": "06:00", "days": 127},
     "start and end are equal"),
    ("/api/v1/schedule", {"amps": 16, "start": "22:00", "end": "06:00", "days": 128},
     "days must be between 0 and 127"),
    ("/api/v1/resume_green_at", {"time": "6h"}, "time must be a time"),
    ("/api/v1/charge_now", [], "not a JSON object"),
])
def test_a_bad_body_sends_nothing(client, daemon, path, body, message):
    response = client.post(path, json=body)
    assert response.status_code == 400 and message in response.get_json()["error"]
    assert sent(daemon) == []


def test_not_json_and_cross_site_are_refused(client, daemon):
    assert client.post("/api/v1/charge_now", data="amps=16").status_code == 400
    assert client.post("/api/v1/boost", data="x", content_type="text/plain").status_code == 400
    assert client.post("/api/v1/boost",
                       headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert sent(daemon) == []


def test_daemon_down_is_503(tmp_path):
    from TWCManager.config import load_config
    from TWCManager.ipc_client import IpcClient
    from www import create_app

    from .util import free_ipc_dir, remove_queue_for

    path = free_ipc_dir(tmp_path)
    try:
        app = create_app(load_config(None, {"ipc.path": str(path), "web.ipc_timeout_s": 0.3}),
                         peer=IpcClient(path))
        response = app.test_client().post("/api/v1/non_scheduled_amps", json={"amps": 8})
        assert response.status_code == 503
    finally:
        remove_queue_for(path)


def test_api_v1_mode_is_the_selector(client, daemon):
    response = client.post("/api/v1/mode", json={"mode": "fixed", "amps": 12})
    assert response.status_code == 200 and sent(daemon) == [
        "chargeNowCancel", "setNonScheduledAmps=12"]
    bad = client.post("/api/v1/mode", json={"mode": "fixed", "amps": 40})
    assert bad.status_code == 400 and "6..32" in bad.get_json()["error"]


@pytest.mark.parametrize("fields, choice, name", [
    ({"pool_source": "charge_now", "non_scheduled_amps": -1}, "boost", "Boost"),
    ({"pool_source": "green", "non_scheduled_amps": -1, "green_mode": "solar"}, "eco-solar",
     "Eco (sun)"),
    ({"pool_source": "green", "non_scheduled_amps": -1, "green_mode": "cheapest"},
     "eco-cheapest", "Eco (cheapest)"),
    ({"pool_source": "non_scheduled", "non_scheduled_amps": 10}, "fixed", "Fixed 10 A"),
    ({"pool_source": "non_scheduled", "non_scheduled_amps": 0, "scheduled_amps": 16},
     "scheduled", "Scheduled"),
    ({"pool_source": "non_scheduled", "non_scheduled_amps": 0, "scheduled_amps": -1}, "off",
     "Do not charge"),
    ({"pool_source": "goal", "non_scheduled_amps": 0}, "goal", "Charge goal"),
])
def test_every_mode_has_its_headline(fields, choice, name):
    from TWCManager.ipc.state_v1 import api_state

    from .fake_peer import status_json_one_twc

    state = api_state({**status_json_one_twc(), **fields})
    assert (state["mode_choice"], state["mode_name"]) == (choice, name)
