"""Fixtures shared by several test files. Helpers that are plain functions live in
tests/util.py (waits, queues), tests/fakes.py (clocks, a wired home) and tests/harness.py
(master + simulated units on a fake clock)."""
from __future__ import annotations

import pytest

from .fake_peer import FakeDaemon
from .util import free_ipc_dir, remove_queue_for


@pytest.fixture
def daemon(tmp_path):
    """The web tests' stand-in daemon on a private SysV queue (tests/fake_peer.py)."""
    with FakeDaemon.in_tmp(tmp_path) as fake:
        yield fake


@pytest.fixture
def ipc_dir(tmp_path):
    """A directory whose ftok key has no queue yet; its queue is removed afterwards."""
    path = free_ipc_dir(tmp_path)
    yield path
    remove_queue_for(path)


@pytest.fixture
def pi30_sim(tmp_path):
    """A simulated PI30 inverter on a pty (symlink tmp_path/ttyPI30): battery 66 %, 1500 W of
    PV, a 500 W load, held still (one step an hour). Yields (simulator, port path)."""
    from TWCManager.sim.pi30 import Pi30Model, Pi30Simulator
    from TWCManager.sim.runner import open_pty

    pty = open_pty(str(tmp_path / "ttyPI30"))
    model = Pi30Model(soc_pct=66.0, pv_w=lambda t: 1500.0, load_w=lambda t: 500.0)
    model.step(1.0)
    sim = Pi30Simulator(model, pty.master_fd, step_s=3600).start()
    yield sim, pty.link_path
    sim.stop()
    pty.close()
