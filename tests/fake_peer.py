"""A fake TWCManager daemon on a real, private SysV message queue, for the web tests.

It speaks the wire format of original-program.md §8 on its own (not through
TWCManager.ipc.wire, so a mistake there is not copied here); what it answers to getStatusJson is
the real daemon's snapshot (`status_json_one_twc`): requests are mtype 2 with
body `=LH` (time, id) + ASCII text; replies are mtype 1, copy time and id, and are cut
at 290 characters, except `dumpState` and `getStatusJson`, which answer in packet mode
(a first message with one byte N, then N messages of up to 290 characters).

    with FakeDaemon.in_tmp(tmp_path) as daemon:
        app = create_app(load_config(None, {"ipc.path": str(daemon.path), ...}))
        ...
        daemon.flush()                    # every request sent so far has been read
        assert daemon.commands == ["chargeNow"]

The state is plain attributes that tests change at will (`status`, `status_json`,
`dump_text`, `last_twc_response`); `silent = True` makes it read and record requests
but answer nothing, like a daemon that is stuck.
"""
from __future__ import annotations

import json
import math
import struct
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import sysv_ipc

HEADER = struct.Struct("=LH")
REQUEST_TYPE = 2
REPLY_TYPE = 1
MAX_REPLY_CHARS = 290
_FLUSH_PREFIX = b"\x00fake-peer-flush:"   # never a real request: not ASCII text

# getStatus replies (§8.7 shapes).
STATUS_NO_TWC = "8.00`40.00`12.00`0.00`8`-1`-1:00`-1:00`127`-1:00`0`0"
# One EU 32 A unit (protocol 2) charging at 7.20 A with 8 A offered.
STATUS_EU = "20.00`32.00`6.00`0.00`-1`13`21:00`07:00`65`-1:00`0`1`032E~32.0~7.20~8.0~1"
# Two 80 A units: one charging at 19.20 A, one idle with 12 A offered.
STATUS_US = ("20.00`40.00`12.00`0.00`20`-1`-1:00`-1:00`127`-1:00`0`2"
             "`032E~80.0~19.20~20~1`0451~80.0~0.00~12~0")


def status_json_one_twc() -> dict:
    """A getStatusJson reply with one EU unit charging, rendered by the real code: the
    snapshot (TWCManager.ipc.status) of a real daemon, built but not started, so this
    stand-in has every figure the daemon has and no other (tests/test_fake_peer.py)."""
    from TWCManager.config import load_config
    from TWCManager.core import policy
    from TWCManager.daemon import Daemon
    from TWCManager.ipc.status import snapshot
    from TWCManager.twc.slave import SlaveTWC

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, {
            "twc.serial_port": str(Path(tmp) / "ttyNone"),
            "settings.file": str(Path(tmp) / "settings.txt"),
            "twc.wiring_max_amps_all_twcs": 32, "twc.wiring_max_amps_per_twc": 32,
            "twc.min_amps_per_twc": 6})
        daemon = Daemon(cfg, with_ipc=False)
    unit = SlaveTWC(twcid=0x032E, sign=1, protocol=2, rated_amps=32.0, registered_at=0.0)
    unit.update_from_heartbeat(1, 16.0, 15.5, now=100.0)
    unit.record_offer(16, now=100.0)
    unit.kwh, unit.volts = 1234, (231, 229, 230)
    daemon.master.slaves.append(unit)
    daemon.site.pool = policy.PoolDecision(16.0, policy.GREEN, "surplus 3450 W")
    daemon.link.up = True
    snap = snapshot(daemon.home, daemon.context(now=100.4))
    return json.loads(json.dumps(snap))   # what crosses the queue


@dataclass(frozen=True)
class Received:
    time_field: int
    ident: int
    text: str


class FakeDaemon:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.key = sysv_ipc.ftok(str(self.path), ord("T"), silence_warning=True)
        # IPC_CREX: fail rather than serve (and later remove) somebody else's queue.
        self.queue = sysv_ipc.MessageQueue(self.key, sysv_ipc.IPC_CREX, mode=0o600)
        self.status = STATUS_EU
        self.status_json: dict | str = status_json_one_twc()
        self.dump_text = "time=1700000000, masterID=7777\nslave 032E: state=1"
        self.last_twc_response = "None"
        # Other packet-mode JSON queries (getGreenStatus, getGreenHistory): text -> reply.
        # Packet queries answered with JSON; no tariff and no inverter unless a test says so.
        self.json_packets: dict[str, object] = {"getTariffStatus": None,
                                                 "getInverterStatus": None}
        self.silent = False
        self._received: list[Received] = []
        self._cond = threading.Condition()
        self._flushes_seen = 0
        self._flushes_sent = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="fake-daemon", daemon=True)

    @classmethod
    def in_tmp(cls, parent: Path) -> FakeDaemon:
        """A fake daemon on a fresh directory of `parent` whose ftok key has no queue."""
        for n in range(50):
            path = Path(parent) / f"fakeipc{n}"
            path.mkdir()
            try:
                return cls(path)
            except sysv_ipc.ExistentialError:
                continue   # that key is in use by someone else: try another inode
        raise RuntimeError("no free SysV key among 50 temporary directories")

    # ------------------------------------------------------------ life cycle

    def start(self) -> FakeDaemon:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Remove the queue (that also wakes the blocked receive) and join the thread."""
        self._stopping = True
        try:
            self.queue.remove()
        except sysv_ipc.ExistentialError:
            pass
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "fake daemon thread did not stop"

    def __enter__(self) -> FakeDaemon:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------------- views

    @property
    def received(self) -> list[Received]:
        with self._cond:
            return list(self._received)

    @property
    def commands(self) -> list[str]:
        """Texts of the one-way commands (id 0), in the order they arrived."""
        return [r.text for r in self.received if r.ident == 0]

    @property
    def queries(self) -> list[str]:
        return [r.text for r in self.received if r.ident != 0]

    def clear(self) -> None:
        with self._cond:
            self._received.clear()

    def flush(self, timeout_s: float = 2.0) -> None:
        """Return once every request put on the queue before this call has been read
        (the queue is FIFO per type): a marker goes through the queue behind them."""
        with self._cond:
            self._flushes_sent += 1
            number = self._flushes_sent
        # Non-blocking: a full queue is a failure here, not a reason to hang.
        self.queue.send(HEADER.pack(0, 0) + _FLUSH_PREFIX + str(number).encode(),
                        block=False, type=REQUEST_TYPE)
        with self._cond:
            if not self._cond.wait_for(lambda: self._flushes_seen >= number, timeout_s):
                raise TimeoutError(f"fake daemon did not read its queue within {timeout_s} s")

    # ------------------------------------------------------------ the server

    def _run(self) -> None:
        while not self._stopping:
            try:
                body, _mtype = self.queue.receive(type=REQUEST_TYPE)
            except (sysv_ipc.ExistentialError, OSError):
                return   # the queue was removed: stop
            time_field, ident = HEADER.unpack_from(body)
            data = body[HEADER.size:]
            if data.startswith(_FLUSH_PREFIX):
                with self._cond:
                    self._flushes_seen = max(self._flushes_seen,
                                             int(data[len(_FLUSH_PREFIX):]))
                    self._cond.notify_all()
                continue
            text = data.decode("ascii", "replace")
            with self._cond:
                self._received.append(Received(time_field, ident, text))
                self._cond.notify_all()
            if ident == 0 or self.silent:
                continue   # commands get no reply, as with the real daemon
            for reply in self._reply_bodies(time_field, ident, text):
                if not self._send_reply(reply):
                    break

    def _send_reply(self, reply: bytes) -> bool:
        # Like the daemon's sender: a long packet reply waits (bounded) for the reader
        # to make room in the 16 KiB kernel queue.
        deadline = time.monotonic() + 2.0
        while True:
            try:
                self.queue.send(reply, block=False, type=REPLY_TYPE)
                return True
            except sysv_ipc.ExistentialError:
                return False
            except sysv_ipc.BusyError:
                if time.monotonic() >= deadline or self._stopping:
                    return False
                time.sleep(0.005)

    def _reply_bodies(self, time_field: int, ident: int, text: str) -> list[bytes]:
        header = HEADER.pack(time_field, ident)
        if text == "getStatus":
            return [header + self.status.encode()[:MAX_REPLY_CHARS]]
        if text == "getLastTWCMsgResponse":
            return [header + self.last_twc_response.encode()[:MAX_REPLY_CHARS]]
        if text.startswith("ping="):
            return [header + b"pong=" + text[5:].encode()]
        if text in ("dumpState", "getStatusJson") or text in self.json_packets:
            if text == "dumpState":
                payload = self.dump_text
            elif text in self.json_packets:
                payload = json.dumps(self.json_packets[text])
            elif isinstance(self.status_json, str):
                payload = self.status_json     # a test's deliberately broken reply
            else:
                payload = json.dumps(self.status_json)
            raw = payload.encode()
            count = max(1, math.ceil(len(raw) / MAX_REPLY_CHARS))
            chunks = [raw[i * MAX_REPLY_CHARS:(i + 1) * MAX_REPLY_CHARS] for i in range(count)]
            return [header + bytes([count])] + [header + chunk for chunk in chunks]
        return []   # unknown queries get nothing, like the daemon
