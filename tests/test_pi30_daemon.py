"""The daemon with a PI30 inverter (the simulator on a pty): its figures in getStatusJson, stale
shown as stale (never as 0), priority changes over IPC applied between polls and read back."""
from __future__ import annotations

import json
import logging

import pytest

from TWCManager.ipc.commands import handle_request
from TWCManager.ipc.status import Context
from TWCManager.ipc.wire import BadRequest
from TWCManager.ipc_client import IpcClient

from .fakes import make_home
from .test_daemon_pty import Rig, charging_unit
from .util import wait_until


def inverter_status(client) -> dict:
    return json.loads(client.query("getStatusJson", timeout_s=5, packets=True))["inverter"]


def test_the_daemon_polls_the_inverter_and_applies_priorities(tmp_path, pi30_sim, caplog):
    caplog.set_level(logging.INFO, logger="TWCManager.pi30")
    sim, port = pi30_sim
    with Rig(tmp_path, [charging_unit()], **{"pi30.port": port, "pi30.interval_s": 0.5,
                                             "pi30.timeout_s": 1.0}) as rig:
        client = IpcClient(rig.ipc_path)
        assert wait_until(lambda: inverter_status(client)["state"] == "ok", timeout_s=10)
        status = inverter_status(client)
        assert status["battery_soc_pct"] == 66 and status["ac_out_w"] == 500
        assert (status["mode"], status["output_priority"]) == ("B", "sbu")
        assert status["last_update_at"] is not None and status["warnings"] == []

        client.command("setInverterOutputPriority=utility")
        assert wait_until(lambda: inverter_status(client)["output_priority"] == "utility",
                          timeout_s=10)
        assert sim.model.output_priority == 0
        assert "set to utility (was sbu; read back) (IPC request)" in \
            inverter_status(client)["last_change"]
        writes = [r for r in sim.requests if r.startswith("POP")]
        client.command("setInverterOutputPriority=utility")          # already in force
        assert wait_until(lambda: "already utility" in (inverter_status(client)["last_change"]
                                                        or ""), timeout_s=10)
        assert [r for r in sim.requests if r.startswith("POP")] == writes   # no second write

        sim.silent = True     # the inverter stops answering: stale, and no figures shown
        assert wait_until(lambda: inverter_status(client)["state"] == "stale", timeout_s=15)
        stale = inverter_status(client)
        assert "battery_soc_pct" not in stale and "no answer" in stale["last_error"]
        sim.silent = False
        assert wait_until(lambda: inverter_status(client)["state"] == "ok", timeout_s=10)
        assert any("Inverter answers again" in r.getMessage() for r in caplog.records)


def test_no_inverter_means_null_and_commands_are_refused(tmp_path):
    with Rig(tmp_path, [charging_unit()]) as rig:
        client = IpcClient(rig.ipc_path)
        assert json.loads(client.query("getStatusJson", timeout_s=5, packets=True))[
            "inverter"] is None
    home = make_home()
    ctx = Context(now=0.0, now_wall_s=0.0, save_settings=print, send=print)
    with pytest.raises(BadRequest, match="no PI30 inverter configured"):
        handle_request("setInverterOutputPriority=sbu", home, ctx)


def test_a_bad_priority_is_refused_with_the_choices():
    from TWCManager.pi30.link import Pi30Link
    from TWCManager.pi30.source import Pi30Source

    source = Pi30Source(Pi30Link("/nonexistent/ttyPI30"), 10.0)   # not started: requests wait
    ctx = Context(now=0.0, now_wall_s=0.0, save_settings=print, send=print, inverter=source)
    with pytest.raises(BadRequest, match="expected one of utility, solar, sbu"):
        handle_request("setInverterOutputPriority=battery", make_home(), ctx)
    handle_request("setInverterChargerPriority=solar-only", make_home(), ctx)
    change = source._requests.get_nowait()
    assert (change["what"], change["value"], change["reason"], change["state"]) == (
        "charger-priority", "solar-only", "IPC request", "pending")
    assert source.status(0.0)["changes"] == [change]
