"""Client side of the daemon's SysV message queue (original-program.md §8), for the
Flask app, `python -m TWCManager.ctl` and scripts.

    client = IpcClient("/path/given/to/ftok")      # or IpcClient() = the configured ipc.path
    client.query("getStatus")                       # -> "20.00`32.00`6.00`…"
    client.query("dumpState", packets=True)         # packet-mode reply, reassembled
    client.command("setNonScheduledAmps=16")        # fire-and-forget (id 0)

Wire format, as the PHP pages: requests are mtype 2 with body `=LH` (time, id) + ASCII text;
replies are mtype 1 and copy time and id. A query uses a random id and the current unix
second; a command uses id 0.

Choices, each because the queue is shared with the old PHP pages and with other threads:

* **The queue is never created here.** PHP's `msg_get_queue` creates a missing queue, which
  hides a daemon that is not running (or a wrong path) behind a 5 s time-out and leaves a
  queue owned by the web server's user. We open without IPC_CREAT and raise
  `IpcError("TWCManager is not running: no IPC queue for <path> (key 0x…)")` instead. The
  queue is opened lazily (a client can be built before the daemon starts) and re-opened
  if it was removed and made again.
* **One router per queue per process.** Every thread waiting for a reply of this process
  registers its (id, time) with the router of that queue; at most one of them polls the
  queue at a time (the others sleep on a condition), and a reply it finds for another
  waiter is handed to that waiter directly. So no reply of this process is lost, put back
  or given to the wrong caller, and N waiting threads cost one poller, not N.
* **Polling, not a blocking receive**: a blocked msgrcv cannot be given a deadline. The
  poller receives non-blocking and sleeps `poll_s`, doubling up to `max_poll_s`; a new query
  wakes it so its reply is picked up at once.
* **Foreign replies follow the PHP rule (§8.5)**: a reply that is not ours and is younger
  than 30 s by its time field is put back at the end of the queue (non-blocking), older
  ones are discarded with a debug log. A reply that comes after we gave up on its query is
  discarded rather than put back, so it does not circulate for 30 s. Once a message that we
  put back comes round again, the poller stops and sleeps, so two pollers (ours and a PHP
  page, say) cannot pass a message back and forth in a tight loop.
* Limits of the protocol, not fixable here: two processes that pick the same id in the
  same second can take each other's reply (PHP matches the id only; we match id and time),
  and a packet that another process takes and puts back arrives out of order.
"""
from __future__ import annotations

import errno
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .ipc.wire import HEADER, REPLY_TYPE, REPLY_UNREAD_S, REQUEST_TYPE, ipc_key, pack

log = logging.getLogger("TWCManager.ipc_client")

# The kernel refuses messages above msgmax (8192 bytes by default, header included);
# the daemon receives up to 64 KiB. Keep well inside the default.
MAX_TEXT_BYTES = 8000
FOREIGN_REPLY_MAX_AGE_S = 30.0          # the PHP pages' rule (§8.5)
COMMAND_SEND_TIMEOUT_S = 1.0            # how long a command waits for room in a full queue
# Our receive buffer: anything the kernel accepts (msgmax, 8192 by default) must fit, or
# one oversized message would sit at the head of the queue and fail every receive.
_RECEIVE_BUFFER = 65536
_PUT_BACK_TIMEOUT_S = 0.05
_MAX_MESSAGES_PER_ROUND = 256
# A queue read this recently has a live reader: if it is full, messages nobody takes fill it.
_READ_RECENTLY_S = 5.0
# Kept a little past the 30 s rule: a reply older than that is discarded anyway.
_ABANDONED_KEEP_S = FOREIGN_REPLY_MAX_AGE_S + 5.0


class IpcError(Exception):
    """The daemon cannot be reached through the queue."""


class IpcTimeout(IpcError):
    """The queue exists but no reply came before the deadline."""


def _check_text(text: str) -> bytes:
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ValueError(f"IPC text must be ASCII: {text[exc.start:exc.end]!r} at "
                         f"character {exc.start}") from None
    if len(data) > MAX_TEXT_BYTES:
        raise ValueError(f"IPC text is {len(data)} bytes; at most {MAX_TEXT_BYTES} fit")
    return data


@dataclass(eq=False)
class _Waiter:
    ident: int
    time_field: int
    packets: bool
    parts: list[bytes] = field(default_factory=list)
    expected: int | None = None     # packet mode: the count from the first message
    done: bool = False
    error: str | None = None

    def feed(self, text: bytes) -> None:
        if not self.packets:
            self.parts.append(text)
            self.done = True
        elif self.expected is None:
            if len(text) != 1:
                self.error = (f"packet-mode reply should start with a 1-byte packet count, "
                              f"got {len(text)} bytes")
                self.done = True
                return
            self.expected = text[0]
            self.done = self.expected == 0
        else:
            self.parts.append(text)
            self.done = len(self.parts) >= self.expected

    def result(self) -> str:
        return b"".join(self.parts).decode("ascii", "replace")


class _Router:
    """The replies of one queue for every thread of this process (see module docstring)."""

    def __init__(self, key: int, where: str) -> None:
        self.key = key
        self.where = where
        self._cond = threading.Condition(threading.Lock())
        self._waiters: dict[int, _Waiter] = {}
        self._abandoned: dict[tuple[int, int], float] = {}   # (id, time) -> forget at
        self._polling = False
        self._kick = threading.Event()
        self._queue = None
        self._open_lock = threading.Lock()

    # ---------------------------------------------------------------- the queue

    def queue(self):
        import sysv_ipc

        with self._open_lock:
            if self._queue is None:
                try:
                    self._queue = sysv_ipc.MessageQueue(self.key,
                                                        max_message_size=_RECEIVE_BUFFER)
                except sysv_ipc.ExistentialError:
                    raise IpcError(f"TWCManager is not running: no IPC queue for "
                                   f"{self.where} (key {self.key:#010x})") from None
                except sysv_ipc.PermissionsError as exc:
                    raise IpcError(f"no permission to use the IPC queue for {self.where} "
                                   f"(key {self.key:#010x}): {exc}") from None
            return self._queue

    def _forget_queue(self, stale) -> None:
        with self._open_lock:
            if self._queue is stale:
                self._queue = None

    def _call(self, op):
        """op(queue), with sysv_ipc's errors as IpcError except BusyError (queue full or
        empty in a non-blocking call). If the queue was removed (and perhaps made again by
        a restarted daemon), it is re-opened once."""
        import sysv_ipc

        for last in (False, True):
            q = self.queue()
            try:
                return op(q)
            except sysv_ipc.BusyError:
                raise
            except sysv_ipc.ExistentialError as exc:
                problem = exc
            except OSError as exc:
                # sysv_ipc reports msgsnd on a removed queue as a plain EINVAL.
                if exc.errno not in (errno.EINVAL, errno.EIDRM):
                    raise IpcError(f"IPC queue {self.key:#010x} ({self.where}): {exc}") from None
                problem = exc
            except sysv_ipc.Error as exc:
                raise IpcError(f"IPC queue {self.key:#010x} ({self.where}): {exc}") from None
            self._forget_queue(q)
            if last:
                raise IpcError(f"IPC queue {self.key:#010x} ({self.where}) failed twice, even "
                               f"after re-opening it: {problem}") from None

    def send(self, body: bytes, mtype: int, deadline: float) -> None:
        """Non-blocking send, retried while the queue is full until the deadline."""
        import sysv_ipc

        pause_s = 0.001
        while True:
            try:
                self._call(lambda q: q.send(body, block=False, type=mtype))
                return
            except sysv_ipc.BusyError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise IpcError(self._why_full()) from None
                time.sleep(min(pause_s, left))
                pause_s = min(pause_s * 2, 0.05)

    def _why_full(self) -> str:
        """What a full queue means: its reader (the daemon) is gone, or it reads but the
        queue is full of messages nobody takes (unread replies, another program's junk)."""
        where = f"IPC queue {self.key:#010x} ({self.where}) is full"
        try:
            q = self.queue()
            count, read_at = q.current_messages, q.last_receive_time
        except Exception as exc:  # the queue went away meanwhile
            return f"{where}: {exc}"
        idle_s = time.time() - read_at if read_at else None
        if idle_s is not None and idle_s <= _READ_RECENTLY_S:
            return (f"{where} ({count} messages) although it was read {idle_s:.0f} s ago: "
                    "it is full of messages nobody takes (replies left unread, or another "
                    "program flooding it); TWCManager removes unread replies after "
                    f"{REPLY_UNREAD_S:.0f} s, try again then")
        since = f"for {idle_s:.0f} s" if idle_s is not None else "ever"
        return (f"{where} ({count} messages) and nothing has read it {since}: TWCManager is "
                "stuck or not running")

    # ------------------------------------------------------------------ waiters

    def register(self, id_range: tuple[int, int], time_field: int, packets: bool) -> _Waiter:
        low, high = id_range
        with self._cond:
            now = time.monotonic()
            for key in [k for k, until in self._abandoned.items() if until <= now]:
                del self._abandoned[key]
            taken = set(self._waiters) | {ident for ident, _ in self._abandoned}
            ident = self._free_id(low, high, taken)
            waiter = _Waiter(ident, time_field, packets)
            self._waiters[ident] = waiter
        return waiter

    def sent(self) -> None:
        self._kick.set()  # the poller may be deep in its back-off: look again now

    @staticmethod
    def _free_id(low: int, high: int, taken: set[int]) -> int:
        for _ in range(32):
            ident = random.randint(low, high)
            if ident not in taken:
                return ident
        free = [i for i in range(low, high + 1) if i not in taken]
        if not free:
            raise IpcError(f"all query ids {low}..{high} are in use by this process")
        return random.choice(free)

    def unregister(self, waiter: _Waiter, sent: bool) -> None:
        with self._cond:
            if self._waiters.get(waiter.ident) is waiter:
                del self._waiters[waiter.ident]
            if sent and not waiter.done:
                # Its reply may still come: drop it then instead of putting it back.
                self._abandoned[(waiter.ident, waiter.time_field)] = (
                    time.monotonic() + _ABANDONED_KEEP_S)

    def wait(self, waiter: _Waiter, deadline: float, poll_s: float, max_poll_s: float) -> None:
        """Until waiter.done; raises IpcTimeout at the deadline."""
        while True:
            with self._cond:
                while True:
                    if waiter.done:
                        return
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise IpcTimeout("")  # the caller words the message
                    if not self._polling:
                        self._polling = True
                        break
                    self._cond.wait(left)
            try:
                self._poll(waiter, deadline, poll_s, max_poll_s)
            finally:
                with self._cond:
                    self._polling = False
                    self._cond.notify_all()  # another waiter takes over the polling

    def _poll(self, waiter: _Waiter, deadline: float, poll_s: float, max_poll_s: float) -> None:
        """The poller's loop: returns once our waiter is done or the deadline passed."""
        pause_s = poll_s
        while True:
            self._kick.clear()
            put_back = self._receive_round()
            if waiter.done:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if put_back:
                # Someone else's reply is going round: give its owner (a PHP page polls
                # every 100 ms) time to take it rather than passing it to and fro.
                pause_s = max_poll_s
            if self._kick.wait(min(pause_s, left)):
                pause_s = poll_s         # a new query was sent: its reply comes soon
            else:
                pause_s = min(pause_s * 2, max_poll_s)

    def _receive_round(self) -> bool:
        """Take the replies waiting now; True if some were put back."""
        import sysv_ipc

        put_back: set[bytes] = set()
        for _ in range(_MAX_MESSAGES_PER_ROUND):
            try:
                body, _mtype = self._call(lambda q: q.receive(block=False, type=REPLY_TYPE))
            except sysv_ipc.BusyError:
                break  # nothing (more) for now
            if body in put_back:
                # We have been round the queue once; let others have it for a while.
                self._put_back(body)
                break
            if self._dispatch(body):
                put_back.add(body)
        return bool(put_back)

    def _dispatch(self, body: bytes) -> bool:
        """Deliver one reply; True if it was put back on the queue."""
        if len(body) < HEADER.size:
            log.debug("IPC: discarded a %d-byte reply (shorter than its header)", len(body))
            return False
        time_field, ident = HEADER.unpack_from(body)
        with self._cond:
            waiter = self._waiters.get(ident)
            if waiter is not None and waiter.time_field == time_field:
                if not waiter.done:
                    waiter.feed(body[HEADER.size:])
                    if waiter.done:
                        self._cond.notify_all()
                return False
            if (ident, time_field) in self._abandoned:
                log.debug("IPC: discarded a late reply to query id %d (we gave up on it)", ident)
                return False
        age_s = time.time() - time_field
        if age_s >= FOREIGN_REPLY_MAX_AGE_S:
            log.debug("IPC: discarded a reply for id %d, %.0f s old (nobody waits that long)",
                      ident, age_s)
            return False
        self._put_back(body)
        return True

    def _put_back(self, body: bytes) -> None:
        try:
            self.send(body, REPLY_TYPE, time.monotonic() + _PUT_BACK_TIMEOUT_S)
        except IpcError as exc:
            log.warning("IPC: could not put back a reply for another process: %s", exc)


_routers: dict[int, _Router] = {}
_routers_lock = threading.Lock()


def _router_for(key: int, where: str) -> _Router:
    with _routers_lock:
        router = _routers.get(key)
        if router is None:
            router = _routers[key] = _Router(key, where)
        return router


def _reset_after_fork() -> None:
    # A forked child (a pre-forking WSGI server) must not inherit locks held by a
    # parent thread, nor its waiters.
    global _routers_lock
    _routers_lock = threading.Lock()
    _routers.clear()


os.register_at_fork(after_in_child=_reset_after_fork)


class IpcClient:
    """Talks to the daemon over the queue `ftok(path, 'T')`, or the queue `key`.

    path None and key None: the `ipc.path` of the configuration found the usual way
    (`$TWCMANAGER_CONFIG`, /etc, the checkout). Thread-safe: share one client or make
    many; clients of one queue in one process share its router.
    """

    def __init__(self, path: str | os.PathLike | None = None, key: int | None = None, *,
                 id_range: tuple[int, int] = (1, 65535), poll_s: float = 0.0005,
                 max_poll_s: float = 0.005) -> None:
        low, high = id_range
        if not 1 <= low <= high <= 0xFFFF:
            raise ValueError(f"id_range {id_range!r} must lie within 1..65535 (0 = command)")
        if poll_s <= 0 or max_poll_s < poll_s:
            raise ValueError("need 0 < poll_s <= max_poll_s")
        if key is None:
            if path is None:
                from .config import find_and_load_config, ipc_path

                path = ipc_path(find_and_load_config(None))
            try:
                key = ipc_key(str(path))
            except OSError as exc:
                raise IpcError(f"cannot compute the IPC key of {path}: {exc.strerror} "
                               f"(ftok needs an existing file or directory)") from None
        self.path = Path(path) if path is not None else None
        self.key = key
        self.id_range = (low, high)
        self.poll_s = poll_s
        self.max_poll_s = max_poll_s
        self._where_text = str(self.path) if self.path is not None else "the given key"

    @property
    def _router(self) -> _Router:
        # Looked up each time, so a client made before a fork gets a fresh router after it.
        return _router_for(self.key, self._where_text)

    def __repr__(self) -> str:
        return f"IpcClient(path={str(self.path)!r}, key={self.key:#010x})"

    def _where(self) -> str:
        path = f" (ftok of {self.path})" if self.path is not None else ""
        return f"IPC queue key {self.key:#010x}{path}"

    def command(self, text: str) -> None:
        """Send a one-way command (id 0, no reply). Raises IpcError if there is no queue
        or it stays full for COMMAND_SEND_TIMEOUT_S."""
        body = pack(int(time.time()), 0, _check_text(text))
        self._router.send(body, REQUEST_TYPE, time.monotonic() + COMMAND_SEND_TIMEOUT_S)

    def query(self, text: str, timeout_s: float = 2.0, packets: bool = False) -> str:
        """Send a query and return its reply text (packet mode: the packets joined).
        Raises IpcTimeout if no (complete) reply comes within timeout_s."""
        data = _check_text(text)
        deadline = time.monotonic() + timeout_s
        router = self._router
        waiter = router.register(self.id_range, int(time.time()) & 0xFFFFFFFF, packets)
        sent = False
        try:
            router.send(pack(waiter.time_field, waiter.ident, data), REQUEST_TYPE, deadline)
            sent = True
            router.sent()
            router.wait(waiter, deadline, self.poll_s, self.max_poll_s)
        except IpcTimeout:
            got = ""
            if waiter.packets and waiter.expected is not None:
                got = f" ({len(waiter.parts)} of {waiter.expected} packets came)"
            raise IpcTimeout(f"TWCManager is not answering: no reply to {text[:40]!r} within "
                             f"{timeout_s:g} s{got} on {self._where()}") from None
        finally:
            router.unregister(waiter, sent)
        if waiter.error:
            raise IpcError(f"bad reply to {text[:40]!r} on {self._where()}: {waiter.error}")
        return waiter.result()
