"""The daemon's end of the SysV message queue (edge): a reader thread blocked in msgrcv posts
requests to the loop, a sender thread sends replies, and both keep the queue usable.

The queue is shared with the old PHP pages, so any local user who may write to it could fill it
(16 KiB by default) and every client would then fail. Two rules keep it usable:

* **Nothing but replies stays.** The reader takes every message that is *not* a reply
  (`msgrcv` with `MSG_EXCEPT` on type 1): requests go to the loop, any other type is dropped
  with a rate-limited log line. Without `MSG_EXCEPT` (not Linux) it takes type 2 only.
* **Unread replies go.** A reply nobody has taken `REPLY_UNREAD_S` after its request was sent
  (twice the PHP pages' 5 s wait) has no reader left: it is not sent at all if it is already that
  old, and while the queue is more than half full the sender takes such replies off its head.
  A young reply taken off the head is put back at the tail and the sweep stops: a reply's
  packets may then arrive out of order, which only happens when nobody has read the queue for a
  while anyway, and is the same risk the PHP put-back rule already has.

The queue is created group-owned, mode `[ipc] mode` (0660 by default): the web app runs as the
daemon's user (install.sh); old PHP pages under a web server need its user in the daemon's group,
or mode "0666" (README, "Moving from the original").
"""
from __future__ import annotations

import ctypes
import errno
import logging
import os
import queue as queue_module
import sys
import threading
import time
from typing import Callable

from .wire import (FUTURE_REQUEST_S, HEADER, REPLY_TYPE, REPLY_UNREAD_S, REQUEST_TYPE,
                  request_age_s)

log = logging.getLogger("TWCManager.ipc")

IPC_REQUEST = "ipc"
# Commands and queries in flight between the IPC thread and the loop: beyond this
# the IPC thread waits, the kernel queue fills and senders feel the back-pressure.
MAX_PENDING_REQUESTS = 64
MAX_MESSAGE_BYTES = 65536
MAX_PENDING_REPLIES = 256
REPLY_SEND_TIMEOUT_S = 2.0
# Unread replies are swept off the head while the queue's bytes are above this share of its size.
SWEEP_ABOVE_FRACTION = 0.5
SWEEP_EVERY_S = 0.5
LOG_EVERY_S = 60.0
WAKE_BODY = HEADER.pack(0, 0)

_IPC_NOWAIT = 0o4000
_MSG_NOERROR = 0o10000   # truncate an oversized message rather than leave it at the head
_MSG_EXCEPT = 0o20000    # Linux: the first message whose type is not the one given


class RateLimitedLog:
    """One log line per `every_s` for a recurring problem, with the count since the last one."""

    def __init__(self, every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.every_s = every_s
        self._clock = clock
        self._last_at: float | None = None
        self._since = 0
        self.total = 0

    def __call__(self, level: int, message: str, *args) -> None:
        self.total += 1
        self._since += 1
        now = self._clock()
        if self._last_at is not None and now - self._last_at < self.every_s:
            return
        log.log(level, message + " (%d since the last such line)", *args, self._since)
        self._last_at, self._since = now, 0


def _msgrcv_function():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).msgrcv
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long, ctypes.c_int]
    fn.restype = ctypes.c_ssize_t
    return fn


class _AllButReplies:
    """Blocking receive of the first message that is not a reply. sysv_ipc has no MSG_EXCEPT,
    hence this one ctypes call (the GIL is released while it blocks)."""

    def __init__(self, queue, sysv) -> None:
        self._queue = queue
        self._sysv = sysv
        self._fn = _msgrcv_function()
        self._header = ctypes.sizeof(ctypes.c_long)
        self._buf = ctypes.create_string_buffer(self._header + MAX_MESSAGE_BYTES)

    def receive(self) -> tuple[bytes, int]:
        if self._fn is None:
            return self._queue.receive(type=REQUEST_TYPE)
        while True:
            size = self._fn(self._queue.id, self._buf, MAX_MESSAGE_BYTES, REPLY_TYPE,
                            _MSG_EXCEPT | _MSG_NOERROR)
            if size >= 0:
                mtype = ctypes.c_long.from_buffer(self._buf).value
                return ctypes.string_at(ctypes.addressof(self._buf) + self._header, size), mtype
            err = ctypes.get_errno()
            if err == errno.EINTR:
                continue
            if err in (errno.EIDRM, errno.EINVAL):
                raise self._sysv.ExistentialError(os.strerror(err))
            raise OSError(err, os.strerror(err))


def queue_bytes(msqid: int) -> int | None:
    """Bytes waiting in a queue (Linux's /proc/sysvipc/msg; sysv_ipc does not expose them)."""
    try:
        with open("/proc/sysvipc/msg") as f:
            next(f)
            for line in f:
                cols = line.split()
                if len(cols) > 4 and cols[1] == str(msqid):
                    return int(cols[3])
    except (OSError, StopIteration, ValueError):
        return None
    return None


class IpcServer:
    """Reads requests in a thread (blocked in msgrcv, no polling) and posts them to
    the daemon loop; replies are sent from the loop without ever blocking it."""

    def __init__(self, key: int, post: Callable[[tuple], None], *, mode: int = 0o660,
                 wall: Callable[[], float] = time.time) -> None:
        import sysv_ipc

        self._sysv = sysv_ipc
        self.key = key
        # A receive buffer above the kernel's message limit (msgmax, 8 KiB by default):
        # with sysv_ipc's 2 KiB default, one long request would wedge the queue.
        self.queue = sysv_ipc.MessageQueue(key, sysv_ipc.IPC_CREAT, mode=mode,
                                           max_message_size=MAX_MESSAGE_BYTES)
        self._set_mode(mode)
        self._receiver = _AllButReplies(self.queue, sysv_ipc)
        self._post = post
        self._wall = wall
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pending = threading.BoundedSemaphore(MAX_PENDING_REQUESTS)
        self.replies_dropped = 0
        self.foreign_dropped = RateLimitedLog()
        self.unread_dropped = RateLimitedLog()
        self._outbox: queue_module.Queue[list[bytes]] = queue_module.Queue(MAX_PENDING_REPLIES)
        self._sender: threading.Thread | None = None
        self._swept_at = 0.0

    def _set_mode(self, mode: int) -> None:
        # A queue left by an earlier run (or made by a PHP page) keeps its mode: set ours.
        if self.queue.mode & 0o777 == mode:
            return
        try:
            self.queue.mode = mode
        except (self._sysv.PermissionsError, OSError) as exc:
            log.warning("IPC queue %#x has mode %o, not %o, and we cannot change it (%s): "
                        "remove it with `ipcrm -Q %#x` while TWCManager is stopped", self.key,
                        self.queue.mode & 0o777, mode, exc, self.key)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ipc-reader", daemon=True)
        self._thread.start()
        self._sender = threading.Thread(target=self._run_sender, name="ipc-sender", daemon=True)
        self._sender.start()

    # ------------------------------------------------------------------ reader

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                body, mtype = self._receiver.receive()
            except self._sysv.ExistentialError:
                log.error("IPC queue %#x was removed; IPC is off until restart", self.key)
                return
            except Exception:  # an interrupted call, a kernel error: log, carry on
                log.exception("IPC receive failed")
                self._stop.wait(1.0)
                continue
            if mtype != REQUEST_TYPE:
                self.foreign_dropped(logging.WARNING, "IPC: dropped a message of type %d that "
                                     "nobody reads (requests are type 2, replies type 1)", mtype)
                continue
            if self._stop.is_set():
                if body != WAKE_BODY:
                    # A request that raced the shutdown: leave it for the next start.
                    self._resend(body)
                return
            self.pending.acquire()
            self._post((IPC_REQUEST, body, time.monotonic()))

    def _resend(self, body: bytes) -> None:
        try:
            self.queue.send(body, block=False, type=REQUEST_TYPE)
        except (self._sysv.BusyError, self._sysv.ExistentialError):
            log.warning("IPC: a request that arrived during shutdown was lost")

    def done(self) -> None:
        """The loop finished one request."""
        try:
            self.pending.release()
        except ValueError:
            pass

    # ------------------------------------------------------------------ sender

    def send(self, bodies: list[bytes]) -> None:
        """Hand a reply to the sender thread; never blocks the loop."""
        if not bodies:
            return
        try:
            self._outbox.put_nowait(bodies)
        except queue_module.Full:
            self.replies_dropped += 1
            log.error("IPC: %d replies waiting to be sent; reply dropped", self._outbox.qsize())

    def _run_sender(self) -> None:
        # A full kernel queue (16 KiB by default) holds ~55 messages: a long packet-mode
        # reply (the chart history) is sent as the reader makes room, for a bounded time.
        while not self._stop.is_set():
            self._sweep_if_full()
            try:
                bodies = self._outbox.get(timeout=SWEEP_EVERY_S)
            except queue_module.Empty:
                continue
            if self._unread_long(bodies[0]):
                # Its asker gave up long ago; sending it would only fill the queue.
                self.unread_dropped(logging.WARNING, "IPC: reply not sent, its request is "
                                    "older than %.0f s", REPLY_UNREAD_S)
                continue
            for body in bodies:
                if not self._send_one(body):
                    break

    def _unread_long(self, body: bytes) -> bool:
        if len(body) < HEADER.size:
            return True
        age_s = request_age_s(HEADER.unpack_from(body)[0], self._wall())
        return age_s > REPLY_UNREAD_S or age_s < -FUTURE_REQUEST_S

    def _send_one(self, body: bytes) -> bool:
        deadline = time.monotonic() + REPLY_SEND_TIMEOUT_S
        while True:
            try:
                self.queue.send(body, block=False, type=REPLY_TYPE)
                return True
            except self._sysv.BusyError:
                if time.monotonic() >= deadline or self._stop.is_set():
                    self.replies_dropped += 1
                    log.error("IPC queue full for %.0f s: reply dropped (nobody is reading "
                              "replies?)", REPLY_SEND_TIMEOUT_S)
                    return False
                self._sweep_if_full()
                time.sleep(0.005)
            except self._sysv.ExistentialError:
                log.error("IPC queue %#x was removed: reply dropped", self.key)
                return False

    def _sweep_if_full(self) -> None:
        """Take unread replies off the head of the queue while it is more than half full."""
        now = time.monotonic()
        if now - self._swept_at < SWEEP_EVERY_S:
            return
        self._swept_at = now
        try:
            used = queue_bytes(self.queue.id)
            if used is None:  # no /proc: judge by the count of messages
                full = self.queue.current_messages > 32
            else:
                full = used > SWEEP_ABOVE_FRACTION * self.queue.max_size
            for _ in range(self.queue.current_messages if full else 0):
                body, _mtype = self.queue.receive(block=False, type=REPLY_TYPE)
                if not self._unread_long(body):
                    self.queue.send(body, block=False, type=REPLY_TYPE)  # young: back, stop
                    return
                self.unread_dropped(logging.WARNING, "IPC: removed a reply nobody read within "
                                    "%.0f s", REPLY_UNREAD_S)
        except self._sysv.BusyError:
            return  # no reply left to take, or no room to put a young one back
        except (self._sysv.Error, OSError) as exc:
            log.error("IPC: sweeping unread replies failed: %s", exc)

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread and self._thread.is_alive():
            try:
                # Wake the blocked receive with an empty request; it is dropped unread.
                self.queue.send(WAKE_BODY, block=False, type=REQUEST_TYPE)
            except (self._sysv.BusyError, self._sysv.ExistentialError):
                pass
            self._thread.join(timeout_s)
        if self._sender:
            self._sender.join(timeout_s)
