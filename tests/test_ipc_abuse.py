"""What a local user can do to the shared queue, and secrets it must never show (issue 15):
junk message types, unread replies, forged dates, dumpState's private values. Real daemon,
real private SysV queues, simulated TWC on a pty."""
from __future__ import annotations

import logging
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sysv_ipc

from TWCManager.ipc import wire as ipc
from TWCManager.ipc import server as ipc_server
from TWCManager.ipc_client import IpcClient, IpcError
from TWCManager.core.settings import Settings
from TWCManager.settings_file import load_settings

from .test_daemon_pty import Rig, charging_unit
from .test_ipc import raw_query
from .util import free_ipc_dir, remove_queue_for, wait_until

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"carApiBearerToken": "eyJhbGciOi.SECRET-ACCESS", "carApiRefreshToken": "SECRET-REFRESH",
           "homeLat": "48.8566123", "homeLon": "2.3522456"}


def fill_with(queue, body: bytes, mtype: int) -> int:
    """Send until the kernel refuses: the queue is full."""
    sent = 0
    while True:
        try:
            queue.send(body, block=False, type=mtype)
        except sysv_ipc.BusyError:
            return sent
        sent += 1


def command_body(text: str, time_field: int) -> bytes:
    return struct.pack("=LH", time_field & 0xFFFFFFFF, 0) + text.encode()


# ------------------------------------------------------------------ pure rules

@pytest.mark.parametrize("time_field, now, age", [
    (1_800_000_000, 1_800_000_060.5, 60.5),
    (1_800_000_100, 1_800_000_000.0, -100.0),
    (0xFFFFFFFF, 1_800_000_000.0, 1_800_000_001.0),        # far past, not the future
    (5, 2 ** 32 + 3.0, -2.0),                               # after the 2106 wrap: 2 s ahead
    (0xFFFFFFF0, 2 ** 32 + 4.0, 20.0),                       # sent just before the wrap
])
def test_request_age_wraps_with_the_32_bit_time_field(time_field, now, age):
    assert ipc.request_age_s(time_field, now) == pytest.approx(age)


@pytest.mark.parametrize("offset_s, dropped", [
    (-61, True), (-59, False), (0, False), (4, False), (6, True), (10 ** 6, True)])
def test_old_and_future_requests_are_refused(offset_s, dropped):
    now = 1_800_000_000.0
    assert (ipc.too_old_or_future(int(now) + offset_s, now) is not None) == dropped


# ------------------------------------------------------------- on a live daemon

@pytest.fixture
def rig(tmp_path):
    settings = Settings(non_scheduled_amps=16, extra=dict(SECRETS))
    with Rig(tmp_path, [charging_unit()], settings=settings) as rig:
        yield rig


def test_future_dated_commands_are_dropped_like_stale_ones(rig, caplog):
    queue = rig.daemon.ipc.queue
    now = int(time.time())
    for forged in (now + 10 ** 6, 0xFFFFFFFF, now + 30):
        queue.send(command_body("setNonScheduledAmps=3", forged), type=2)
    assert raw_query(queue, "getStatus").split("`")[4] == "16"
    dropped = [r.getMessage() for r in caplog.records if "dropped 'setNonScheduledAmps=3'" in
               r.getMessage()]
    assert len(dropped) == 3
    assert sum("in the future" in m for m in dropped) == 2 and "ago" in dropped[1]
    queue.send(command_body("setNonScheduledAmps=7", now + 2), type=2)   # clock skew is fine
    assert wait_until(lambda: raw_query(queue, "getStatus").split("`")[4] == "7", 5)


def test_dump_state_hides_tokens_and_position_everywhere(rig):
    client = IpcClient(rig.ipc_path)
    dump = client.query("dumpState", timeout_s=5, packets=True)
    assert "carApiBearerToken" in dump and "[hidden]" in dump
    for secret in SECRETS.values():
        assert secret not in dump
    out = subprocess.run([sys.executable, "-m", "TWCManager.ctl", "--ipc-path", str(rig.ipc_path),
                          "dumpState"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "[hidden]" in out.stdout
    assert not any(secret in out.stdout + out.stderr for secret in SECRETS.values())
    # A command saves the settings: the secrets stay in the file, untouched.
    client.command("setNonScheduledAmps=12")
    assert wait_until(lambda: load_settings(rig.settings_file)[0].non_scheduled_amps == 12, 5)
    extra = load_settings(rig.settings_file)[0].extra
    assert {key: extra[key] for key in SECRETS} == SECRETS


def test_messages_of_types_nobody_serves_are_drained_with_few_log_lines(rig, caplog):
    queue = rig.daemon.ipc.queue
    junk = struct.pack("=LH", int(time.time()), 1) + b"x" * 200
    total = 0
    for mtype in (3, 99, 2 ** 31 - 1):
        # Before the fix the first fill stayed: every client failed from then on.
        for _ in range(20):
            total += fill_with(queue, junk, mtype)
            if wait_until(lambda: queue.current_messages == 0, 5):
                break
    assert total > 200
    assert raw_query(queue, "getStatus").split("`")[4] == "16"
    client = IpcClient(rig.ipc_path)
    assert client.query("ping=ok", timeout_s=5) == "pong=ok"
    lines = [r for r in caplog.records if "nobody reads" in r.getMessage()]
    assert 1 <= len(lines) <= 2 and rig.daemon.ipc.foreign_dropped.total == total


def test_junk_left_in_the_queue_is_cleared_at_the_next_start(tmp_path):
    ipc_dir = free_ipc_dir(tmp_path)
    try:
        queue = sysv_ipc.MessageQueue(ipc.ipc_key(str(ipc_dir)), sysv_ipc.IPC_CREAT, mode=0o666)
        assert fill_with(queue, b"\0" * 6 + b"junk" * 50, 3) > 10
        with Rig(tmp_path, [charging_unit()], **{"ipc.path": str(ipc_dir)}) as rig:
            assert IpcClient(ipc_dir).query("ping=1", timeout_s=5) == "pong=1"
            assert rig.daemon.ipc.queue.mode & 0o777 == 0o660   # the configured mode, set
    finally:
        remove_queue_for(ipc_dir)


def test_unread_replies_are_removed_so_clients_get_through_again(rig, monkeypatch, caplog):
    monkeypatch.setattr(ipc_server, "REPLY_UNREAD_S", 2.0)
    queue = rig.daemon.ipc.queue
    now = int(time.time())
    sent = 0
    deadline = time.monotonic() + 10
    while sent < 300 and time.monotonic() < deadline:   # getStatus whose replies nobody reads
        try:
            queue.send(struct.pack("=LH", now, sent + 1) + b"getStatus", type=2, block=False)
            sent += 1
        except sysv_ipc.BusyError:
            time.sleep(0.01)
    client = IpcClient(rig.ipc_path)
    assert wait_until(lambda: not _answers(client), timeout_s=5)   # blocked for a while
    # The queue clears by itself: a client gets through well before the PHP 30 s rule would.
    assert wait_until(lambda: _answers(client), timeout_s=15)
    assert rig.daemon.ipc.unread_dropped.total > 0
    assert any("nobody read" in r.getMessage() or "older than" in r.getMessage()
               for r in caplog.records)


def _answers(client) -> bool:
    try:
        return client.query("ping=x", timeout_s=0.5) == "pong=x"
    except IpcError:
        return False


def test_a_full_queue_says_what_is_wrong(tmp_path, rig):
    # Served by a live daemon, full of young foreign replies: the daemon is fine.
    queue = rig.daemon.ipc.queue
    for size in (300, 1):
        fill_with(queue, struct.pack("=LH", int(time.time()), 9) + b"r" * size, ipc.REPLY_TYPE)
    with pytest.raises(IpcError) as live:
        IpcClient(rig.ipc_path).command("setNonScheduledAmps=9")
    assert "full of messages nobody takes" in str(live.value)
    assert "not running" not in str(live.value)
    # Nobody reads at all: the daemon is not there.
    ipc_dir = free_ipc_dir(tmp_path)
    try:
        bare = sysv_ipc.MessageQueue(ipc.ipc_key(str(ipc_dir)), sysv_ipc.IPC_CREAT, mode=0o600)
        fill_with(bare, b"\0" * 6 + b"getStatus" * 30, 2)
        fill_with(bare, b"\0" * 6, 2)
        with pytest.raises(IpcError) as dead:
            IpcClient(ipc_dir).command("setNonScheduledAmps=9")
        assert "nothing has read it ever: TWCManager is stuck or not running" in str(dead.value)
    finally:
        remove_queue_for(ipc_dir)


def test_rate_limited_log_counts_what_it_did_not_print(caplog):
    clock = [0.0]
    limited = ipc_server.RateLimitedLog(every_s=60, clock=lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="TWCManager.ipc"):
        for step in range(130):
            clock[0] = step
            limited(logging.WARNING, "dropped type %d", 3)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["dropped type 3 (1 since the last such line)",
                        "dropped type 3 (60 since the last such line)",
                        "dropped type 3 (60 since the last such line)"]
    assert limited.total == 130
