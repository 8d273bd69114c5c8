"""The IPC client library and `python -m TWCManager.ctl` on real SysV queues.

Each test uses a private queue: ftok of a temp directory whose key has no queue yet,
removed in the fixture's finalizer. The daemon is the real one, in-process, with
simulated TWCs on a pty (the Rig of test_daemon_pty)."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sysv_ipc

from TWCManager.ipc import wire as ipc
from TWCManager.ipc_client import MAX_TEXT_BYTES, IpcClient, IpcError, IpcTimeout

from .test_daemon_pty import Rig, charging_unit
from .util import free_ipc_dir, remove_queue_for, wait_until

ROOT = Path(__file__).resolve().parent.parent
REPLY_S = 5.0   # deadline for one reply from a live daemon (answers take milliseconds)


@pytest.fixture
def bare_queue(ipc_dir):
    """The queue exists, nobody serves it."""
    return sysv_ipc.MessageQueue(ipc.ipc_key(str(ipc_dir)), sysv_ipc.IPC_CREAT, mode=0o600)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """One daemon for the module: two simulated units (protocol 2 and 1)."""
    tmp = tmp_path_factory.mktemp("ipcrig")
    ipc_dir = free_ipc_dir(tmp)
    units = [charging_unit(0x032E), charging_unit(0x0451, protocol=1, max_amps=80.0)]
    try:
        rig = Rig(tmp, units, **{"ipc.path": str(ipc_dir)})
        rig.ipc_path = ipc_dir  # what Rig.__exit__ removes
        with rig:
            yield rig
    finally:
        remove_queue_for(ipc_dir)


def status_fields(client) -> list[str]:
    return client.query("getStatus", timeout_s=REPLY_S).split("`")


def reply_bodies_left(queue) -> list[bytes]:
    """Take every reply (mtype 1) left in the queue."""
    bodies = []
    while True:
        try:
            bodies.append(queue.receive(block=False, type=ipc.REPLY_TYPE)[0])
        except sysv_ipc.BusyError:
            return bodies


# ------------------------------------------------------------- live daemon


def test_get_status_round_trip(rig):
    client = IpcClient(rig.ipc_path)
    fields = status_fields(client)
    assert fields[1] == "16.00" and fields[4] == "16"       # wiring default, settings
    assert wait_until(lambda: status_fields(client)[11] == "2", timeout_s=20)
    slaves = sorted(status_fields(client)[12:])
    assert [s.split("~")[:2] for s in slaves] == [["032E", "32.0"], ["0451", "80.0"]]


def test_command_effect_shows_in_get_status(rig):
    client = IpcClient(rig.ipc_path)
    client.command("setNonScheduledAmps=10")
    assert wait_until(lambda: status_fields(client)[4] == "10", timeout_s=REPLY_S)
    client.command("setNonScheduledAmps=16")
    assert wait_until(lambda: status_fields(client)[4] == "16", timeout_s=REPLY_S)


def test_dump_state_in_packet_mode_names_each_slave(rig):
    client = IpcClient(rig.ipc_path)
    assert wait_until(lambda: status_fields(client)[11] == "2", timeout_s=20)
    text = client.query("dumpState", timeout_s=REPLY_S, packets=True)
    assert len(text) > ipc.MAX_REPLY_CHARS   # really several packets, joined
    assert "slave 032E:" in text and "slave 0451:" in text
    assert text.startswith("time=")


def test_many_threads_each_get_their_own_reply(rig):
    clients = [IpcClient(rig.ipc_path), IpcClient(rig.ipc_path)]  # share one router
    wrong: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        client = clients[n % 2]
        try:
            for i in range(50):
                token = f"{n}-{i}"
                reply = client.query(f"ping={token}", timeout_s=10)
                if reply != f"pong={token}":
                    wrong.append((token, reply))
        except BaseException as exc:  # reported below, with the thread's number
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "a query thread hung"
    assert not errors, errors[:3]
    assert not wrong, wrong[:5]
    queue = sysv_ipc.MessageQueue(ipc.ipc_key(str(rig.ipc_path)))
    assert reply_bodies_left(queue) == []   # nothing lost in, nothing left over


def test_fresh_foreign_reply_is_put_back(rig):
    queue = sysv_ipc.MessageQueue(ipc.ipc_key(str(rig.ipc_path)))
    foreign = ipc.pack(int(time.time()), 4242, b"someone else's reply")
    queue.send(foreign, type=ipc.REPLY_TYPE)
    client = IpcClient(rig.ipc_path, id_range=(1, 1000))
    assert client.query("ping=mine", timeout_s=REPLY_S) == "pong=mine"
    assert reply_bodies_left(queue) == [foreign]


def test_old_foreign_reply_is_discarded(rig, caplog):
    queue = sysv_ipc.MessageQueue(ipc.ipc_key(str(rig.ipc_path)))
    queue.send(ipc.pack(int(time.time()) - 100, 4242, b"stale"), type=ipc.REPLY_TYPE)
    client = IpcClient(rig.ipc_path, id_range=(1, 1000))
    with caplog.at_level(logging.DEBUG, logger="TWCManager.ipc_client"):
        assert client.query("ping=mine", timeout_s=REPLY_S) == "pong=mine"
    assert reply_bodies_left(queue) == []
    assert "discarded a reply for id 4242" in caplog.text


def test_alongside_a_php_style_client(rig):
    """A PHP page polling the same queue (it puts back what is not its own) and our
    threads all get their own replies."""
    key = ipc.ipc_key(str(rig.ipc_path))
    php_results: list[bool] = []

    def php_query(n: int) -> bool:
        queue = sysv_ipc.MessageQueue(key)
        ident = 60000 + n
        queue.send(ipc.pack(int(time.time()), ident, f"ping=php{n}".encode()), type=2)
        for _ in range(500):
            try:
                body, _ = queue.receive(block=False, type=ipc.REPLY_TYPE)
            except sysv_ipc.BusyError:
                time.sleep(0.01)
                continue
            t, i = ipc.HEADER.unpack_from(body)
            if i == ident:
                return body[6:] == f"pong=php{n}".encode()
            if time.time() - t < 30:
                queue.send(body, type=ipc.REPLY_TYPE)
            time.sleep(0.01)
        return False

    def php_worker():
        for n in range(20):
            php_results.append(php_query(n))

    client = IpcClient(rig.ipc_path, id_range=(1, 50000))
    ours: list[bool] = []

    def our_worker(n):
        for i in range(30):
            ours.append(client.query(f"ping=py{n}-{i}", timeout_s=10) == f"pong=py{n}-{i}")

    threads = [threading.Thread(target=php_worker)] + [
        threading.Thread(target=our_worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads)
    assert php_results == [True] * 20
    assert ours == [True] * 120


def test_ctl_prints_status_and_runs_commands(rig, tmp_path):
    config = tmp_path / "empty.toml"
    config.write_text("")  # built-in defaults; --ipc-path names the queue
    base = [sys.executable, "-m", "TWCManager.ctl", "--config", str(config),
            "--ipc-path", str(rig.ipc_path)]
    out = subprocess.run(base + ["getStatus"], cwd=ROOT, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("`") >= 11 and out.stdout.startswith(
        tuple("0123456789")), out.stdout
    out = subprocess.run(base + ["setNonScheduledAmps=12"], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    # ctl waits until the daemon has handled the command: no polling needed
    assert status_fields(IpcClient(rig.ipc_path))[4] == "12"
    IpcClient(rig.ipc_path).command("setNonScheduledAmps=16")
    out = subprocess.run(base + ["getStatusJson"], cwd=ROOT, capture_output=True, text=True,
                         timeout=30)   # a packet-mode query
    assert out.returncode == 0 and len(json.loads(out.stdout)["slaves"]) == 2, out
    out = subprocess.run(base + ["status"], cwd=ROOT, capture_output=True, text=True,
                         timeout=30)   # for a person
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("Mode: non_scheduled — non-scheduled amps (")
    assert sum(line.startswith("Charger ") for line in lines) == 2, out.stdout
    assert "`" not in out.stdout and "{" not in out.stdout


def test_a_long_request_does_not_wedge_the_daemon(rig):
    client = IpcClient(rig.ipc_path)
    client.command("beginTest=" + "x" * (MAX_TEXT_BYTES - 10))   # unknown: logged, ignored
    assert client.query("ping=after", timeout_s=REPLY_S) == "pong=after"


# --------------------------------------------------------------- no daemon


def test_missing_queue_is_a_clear_error(ipc_dir):
    client = IpcClient(ipc_dir)
    with pytest.raises(IpcError, match="TWCManager is not running: no IPC queue for") as err:
        client.query("getStatus", timeout_s=0.2)
    assert str(ipc_dir) in str(err.value) and f"{client.key:#010x}" in str(err.value)
    with pytest.raises(IpcError, match="not running"):
        client.command("chargeNow")
    with pytest.raises(sysv_ipc.ExistentialError):  # and we did not create it
        sysv_ipc.MessageQueue(client.key)


def test_timeout_when_nobody_serves_the_queue(bare_queue, ipc_dir):
    client = IpcClient(ipc_dir)
    started = time.monotonic()
    with pytest.raises(IpcTimeout, match="not answering") as err:
        client.query("getStatus", timeout_s=0.3)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 0.3 + 2.0, elapsed
    assert f"{client.key:#010x}" in str(err.value) and str(ipc_dir) in str(err.value)


class FakeServer:
    """Answers requests on a bare queue with reply(request) -> list of bodies."""

    def __init__(self, queue, reply):
        self.queue = queue
        self.reply = reply
        self.requests: list[tuple[bytes, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def _run(self):
        while not self._stop.is_set():
            try:
                body, mtype = self.queue.receive(block=False, type=ipc.REQUEST_TYPE)
            except sysv_ipc.BusyError:
                self._stop.wait(0.001)
                continue
            self.requests.append((body, mtype))
            for out in self.reply(ipc.unpack(body)):
                self.queue.send(out, type=ipc.REPLY_TYPE)


def test_request_bytes_are_the_php_layout(bare_queue, ipc_dir):
    def echo(request):  # queries only, as the daemon: a command (id 0) gets no reply
        return ipc.reply_bodies(request, ipc.Reply(request.text.upper())) if request.ident else []

    with FakeServer(bare_queue, echo) as server:
        client = IpcClient(ipc_dir, id_range=(7, 7))
        before = int(time.time())
        assert client.query("getStatus", timeout_s=REPLY_S) == "GETSTATUS"
        client.command("chargeNow")
        assert wait_until(lambda: len(server.requests) == 2, timeout_s=REPLY_S)
    (query, qtype), (command, ctype) = server.requests
    assert (qtype, ctype) == (2, 2)
    assert query[4:] == b"\x07\x00getStatus"   # id 7, native (little-endian) order
    assert before <= int.from_bytes(query[:4], sys.byteorder) <= time.time()
    assert command[4:] == b"\x00\x00chargeNow"


def test_late_reply_to_an_abandoned_query_is_dropped(bare_queue, ipc_dir):
    client = IpcClient(ipc_dir, id_range=(1, 1000))
    with pytest.raises(IpcTimeout):
        client.query("getStatus", timeout_s=0.1)
    # the daemon wakes up and answers the old query, then the new one
    with FakeServer(bare_queue, lambda r: ipc.reply_bodies(r, ipc.Reply("ok " + r.text))):
        assert client.query("ping=x", timeout_s=REPLY_S) == "ok ping=x"
        # the late reply was received before ours (FIFO): dropped, not put back
        assert reply_bodies_left(bare_queue) == []


def test_packet_reply_with_a_reply_for_another_thread_in_between(bare_queue, ipc_dir):
    """Another thread's reply arrives between the packets of a dumpState: both callers
    get exactly their own text."""
    long_text = "".join(f"line {n:03d}\n" for n in range(100))   # 1000 chars: 4 packets
    held: list[bytes] = []
    got_dump = threading.Event()

    def answer(request):
        if request.text == "dumpState":
            bodies = ipc.reply_bodies(request, ipc.Reply(long_text, packets=True))
            held.extend(bodies[2:])   # count + first packet now, the rest after the pong
            got_dump.set()
            return bodies[:2]
        return ipc.reply_bodies(request, ipc.Reply("pong")) + held

    client = IpcClient(ipc_dir)
    results = {}
    with FakeServer(bare_queue, answer):
        def dump():
            results["dump"] = client.query("dumpState", timeout_s=REPLY_S, packets=True)

        thread = threading.Thread(target=dump)
        thread.start()
        assert got_dump.wait(REPLY_S)
        results["ping"] = client.query("ping=1", timeout_s=REPLY_S)
        thread.join(REPLY_S + 1)
    assert results == {"dump": long_text, "ping": "pong"}


def test_queue_made_again_is_reopened(ipc_dir):
    """A daemon restarted after its queue was removed: the client finds the new one."""
    key = ipc.ipc_key(str(ipc_dir))
    client = IpcClient(ipc_dir)
    answer = lambda r: ipc.reply_bodies(r, ipc.Reply("one"))  # noqa: E731
    first = sysv_ipc.MessageQueue(key, sysv_ipc.IPC_CREAT, mode=0o600)
    with FakeServer(first, answer):
        assert client.query("getStatus", timeout_s=REPLY_S) == "one"
    first.remove()
    second = sysv_ipc.MessageQueue(key, sysv_ipc.IPC_CREAT, mode=0o600)
    with FakeServer(second, lambda r: ipc.reply_bodies(r, ipc.Reply("two"))):
        assert client.query("getStatus", timeout_s=REPLY_S) == "two"
        client.command("chargeNow")


def test_text_must_be_ascii_and_short(ipc_dir):
    client = IpcClient(ipc_dir)
    with pytest.raises(ValueError, match="ASCII"):
        client.command("setNonScheduledAmps=1\u00e9")
    with pytest.raises(ValueError, match="at most"):
        client.query("x" * (MAX_TEXT_BYTES + 1))


def test_ctl_without_daemon_exits_1_with_one_line(ipc_dir, tmp_path):
    config = tmp_path / "empty.toml"
    config.write_text("")
    for request in ("getStatus", "chargeNow"):
        out = subprocess.run([sys.executable, "-m", "TWCManager.ctl", "--config", str(config),
                              "--ipc-path", str(ipc_dir), "--timeout", "0.5", request],
                             cwd=ROOT, capture_output=True, text=True, timeout=30,
                             env={k: v for k, v in os.environ.items() if k != "TWCMANAGER_CONFIG"})
        assert out.returncode == 1 and out.stdout == ""
        assert out.stderr.count("\n") == 1 and "TWCManager is not running" in out.stderr, out.stderr
