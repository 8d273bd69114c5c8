"""Tempo in the whole system: a real daemon (tests/test_daemon_pty.Rig) learning colours from the
loopback RTE fake, shown in getStatusJson and /api/v1/state, and overridden by hand over IPC,
from the dashboard's form and with POST /api/v1/tempo/colour."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest

from TWCManager.ipc_client import IpcClient
from TWCManager.tariff.tempo import PARIS, TempoPrices, period, tempo_day

from .fake_rte import CLIENT_ID, CLIENT_SECRET, FakeRte
from .test_api_v1 import make_app
from .test_daemon_pty import Rig, charging_unit
from .util import wait_until


def tempo_overrides(tmp_path, rte_url: str, source: str = "rte") -> dict:
    secret = tmp_path / "rte-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    return {"tariff.kind": "tempo", "tempo.source": source, "tempo.rte_url": rte_url,
            "tempo.client_id": CLIENT_ID, "tempo.client_secret_file": str(secret),
            "tempo.cache_file": str(tmp_path / "tempo.json")}


def tariff(client) -> dict:
    return json.loads(client.query("getStatusJson", timeout_s=5, packets=True))["tariff"]


@pytest.fixture
def today():
    return tempo_day(datetime.now(PARIS))


def test_the_daemon_learns_from_rte_and_takes_overrides(tmp_path, today):
    with FakeRte({today: "WHITE", today - timedelta(days=1): "BLUE"}) as rte, \
            Rig(tmp_path, [charging_unit()], **tempo_overrides(tmp_path, rte.url)) as rig:
        client = IpcClient(rig.ipc_path)
        assert wait_until(lambda: tariff(client)["tempo_today"] == "WHITE", timeout_s=10)
        status = tariff(client)
        assert status["tempo_tomorrow"] is None and status["tomorrow"]["assumed"] in (
            "RED", "WHITE", "BLUE")
        which = period(datetime.now(PARIS))
        assert status["price_eur_kwh"] == getattr(TempoPrices(), f"white_{which}_eur_kwh")

        tomorrow = (today + timedelta(days=1)).isoformat()
        client.command(f"setTempoColour={tomorrow},red")
        assert wait_until(lambda: tariff(client)["tempo_tomorrow"] == "RED", timeout_s=5)
        assert tariff(client)["tomorrow"]["source"] == "manual"
        client.command(f"setTempoColour={tomorrow},auto")
        assert wait_until(lambda: tariff(client)["tempo_tomorrow"] is None, timeout_s=5)
        client.command(f"setTempoColour={tomorrow},PINK")       # refused, nothing changes
        client.command("setTempoColour=tomorrow,RED")
        assert tariff(client)["tempo_tomorrow"] is None
    cached = json.loads((tmp_path / "tempo.json").read_text())
    assert cached["days"][today.isoformat()]["colour"] == "WHITE"      # kept for the next start


def test_api_v1_and_the_form_set_a_colour(tmp_path, today):
    with Rig(tmp_path, [charging_unit()],
             **tempo_overrides(tmp_path, "http://127.0.0.1:9", source="manual")) as rig:
        client = make_app(rig.ipc_path).test_client()
        state = client.get("/api/v1/state").get_json()
        assert state["tempo_today"] is None and state["tariff_period"] in ("peak", "offpeak")
        assert state["price_eur_kwh"] > 0 and state["export_eur_kwh"] == 0.04

        response = client.post("/api/v1/tempo/colour",
                               json={"date": today.isoformat(), "colour": "BLUE"})
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["tariff"]["tempo_today"] == "BLUE"
        assert client.get("/api/v1/state").get_json()["tempo_today"] == "BLUE"
        for body, message in (({"date": "3/12", "colour": "RED"}, "expected YYYY-MM-DD"),
                              ({"date": today.isoformat(), "colour": "PINK"}, "expected one of"),
                              ({"date": today.isoformat()}, "expected one of")):
            bad = client.post("/api/v1/tempo/colour", json=body)
            assert bad.status_code == 400 and message in bad.get_json()["error"]

        page = client.get("/").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        tomorrow = (today + timedelta(days=1)).isoformat()
        assert client.post("/tempo", data={"date": tomorrow, "colour": "RED"}).status_code == 403
        done = client.post("/tempo", data={"csrf_token": token, "date": tomorrow,
                                           "colour": "RED"}, follow_redirects=True)
        assert f"Tempo {tomorrow}: RED (manual)" in done.get_data(as_text=True)
        assert wait_until(lambda: client.get("/api/getTariffStatus").get_json()["plan"],
                          timeout_s=10)
        tariff_status = client.get("/api/getTariffStatus").get_json()
        assert tariff_status["tempo_tomorrow"] == "RED"
        # The plan: the car's windows with prices; no battery part without an inverter.
        plan = tariff_status["plan"]
        assert plan["battery"] is None and plan["car"][0]["price_eur_kwh"] > 0
        assert state["plan_output_priority"] is None and state["battery_target_soc_pct"] is None


def test_with_an_inverter_the_plan_has_the_battery(tmp_path, pi30_sim, today):
    sim, port = pi30_sim
    with Rig(tmp_path, [charging_unit()], **{"pi30.port": port, "pi30.interval_s": 0.5,
                                             "pi30.timeout_s": 1.0},
             **tempo_overrides(tmp_path, "http://127.0.0.1:9", source="manual")) as rig:
        client = make_app(rig.ipc_path).test_client()
        assert wait_until(lambda: client.get("/api/v1/state").get_json()[
            "plan_output_priority"] is not None, timeout_s=10)     # the first plan step
        state = client.get("/api/v1/state").get_json()
        assert state["plan_output_priority"] in ("utility", "sbu")
        assert state["plan_charger_priority"] in ("solar-only", "solar-utility")
        assert 20 <= state["battery_target_soc_pct"] <= 100 and state["battery_target_reason"]
        assert state["plan_automate"] is False
        assert sim.model.output_priority == 2          # advice only: nothing written
        assert not [r for r in sim.requests if r.startswith(("POP", "PCP"))]


def test_without_a_tariff_the_keys_are_null_and_overrides_409(tmp_path):
    with Rig(tmp_path, [charging_unit()]) as rig:
        client = make_app(rig.ipc_path).test_client()
        state = client.get("/api/v1/state").get_json()
        assert (state["tempo_today"], state["price_eur_kwh"], state["tariff_period"]) == (
            None, None, None)
        response = client.post("/api/v1/tempo/colour", json={"date": "2026-12-03",
                                                              "colour": "RED"})
        assert response.status_code == 409 and "no Tempo tariff" in response.get_json()["error"]


def test_an_unreadable_secret_stops_the_daemon_with_status_2(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "c.toml"
    config.write_text('[tariff]\nkind = "tempo"\n[tempo]\nsource = "rte"\nclient_id = "x"\n'
                      f'client_secret_file = "{tmp_path / "missing"}"\n'
                      f'[twc]\nserial_port = "{tmp_path / "tty"}"\n'
                      f'[ipc]\npath = "{tmp_path}"\n')
    proc = subprocess.run([sys.executable, "-m", "TWCManager", "--config", str(config)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "tempo.client_secret_file" in proc.stderr
    assert "Traceback" not in proc.stderr
