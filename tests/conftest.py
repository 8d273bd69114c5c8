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
