"""The web tests' stand-in daemon (tests/fake_peer.py) must say what the real daemon says:
its getStatus fixtures are what the real renderer writes for the state they describe, and its
getStatusJson has exactly the real daemon's figures. A figure added to one and not the other
fails here."""
from __future__ import annotations

import json

import pytest

from TWCManager.core import policy
from TWCManager.core.settings import Settings
from TWCManager.ipc.status import Context, get_status_text, snapshot
from TWCManager.ipc_client import IpcClient
from TWCManager.twc.slave import SlaveTWC

from .fake_peer import STATUS_EU, STATUS_NO_TWC, STATUS_US, status_json_one_twc
from .fakes import make_home
from .test_daemon_pty import Rig, charging_unit
from .util import wait_until


def unit(twcid, rated, actual, offered, state, changed=True, protocol=2) -> SlaveTWC:
    slave = SlaveTWC(twcid=twcid, sign=1, protocol=protocol, rated_amps=rated, registered_at=0)
    slave.actual_amps, slave.offered_amps, slave.state = actual, offered, state
    slave.offer_ever_changed = changed
    return slave


def rendered(limits, settings, pool_amps, units) -> str:
    home = make_home(None, settings, policy.Limits(*limits))
    home.master.slaves.extend(units)
    home.site.pool = policy.PoolDecision(pool_amps, policy.NON_SCHEDULED, "")
    ctx = Context(now=0.0, now_wall_s=1_800_000_000.0, save_settings=print, send=print)
    return get_status_text(snapshot(home, ctx))


@pytest.mark.parametrize("fixture, limits, settings, pool_amps, units", [
    (STATUS_NO_TWC, (40, 40, 12), Settings(non_scheduled_amps=8), 8.0, []),
    (STATUS_EU, (32, 32, 6), Settings(scheduled_amps=13, scheduled_start_min=21 * 60,
                                      scheduled_end_min=7 * 60, scheduled_days_bitmap=65),
     20.0, [unit(0x032E, 32.0, 7.2, 8, 1, changed=False)]),
    (STATUS_US, (40, 40, 12), Settings(non_scheduled_amps=20), 20.0,
     [unit(0x032E, 80.0, 19.2, 20, 1, protocol=1), unit(0x0451, 80.0, 0.0, 12, 0, protocol=1)]),
])
def test_get_status_fixtures_are_the_real_rendering(fixture, limits, settings, pool_amps, units):
    assert rendered(limits, settings, pool_amps, units) == fixture


def shape(value):
    """The keys of a JSON value, recursively (lists by their first item): the figures."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [shape(value[0])]
    return None   # a number, a string, null or a list of numbers: a value, not a figure


def test_fake_status_json_has_exactly_the_real_daemons_figures(tmp_path):
    with Rig(tmp_path, [charging_unit()]) as rig:
        client = IpcClient(rig.ipc_path)
        assert wait_until(lambda: rig.slaves(), timeout_s=10)
        real = json.loads(client.query("getStatusJson", timeout_s=5, packets=True))
    fake = status_json_one_twc()
    assert shape(fake) == shape(real)
    assert fake["slaves"][0]["twcid"] == "032E" and fake["link"]["up"] is True
