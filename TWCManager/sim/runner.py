"""I/O around the simulated TWCs: a pseudo-terminal, a bus thread, a sniffer.

`SimBus` runs one or more `SimulatedTWC` on one line (a pty we create, a file
descriptor, or an open pyserial port) in a background thread that sleeps in
`selectors` until bytes arrive or the next simulated deadline; it never polls.
`Sniffer` decodes and prints every frame on a line and never sends.
"""
from __future__ import annotations

import errno
import logging
import os
import selectors
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ..twc.consolelog import describe, heartbeat_line
from ..twc.messages import MasterHeartbeat, Message, SlaveHeartbeat, parse_message
from ..twc.protocol import FrameDecoder, encode_frame
from .twc import SimulatedTWC

log = logging.getLogger(__name__)

# Longest single sleep of a bus thread; deadlines are usually much closer.
MAX_WAIT_S = 5.0
# Lines without a file descriptor (some pyserial URLs) are read with this timeout instead.
NO_FD_READ_TIMEOUT_S = 0.2
READ_CHUNK = 4096

Clock = Callable[[], float]
LogEntry = tuple[float, str, Message]


# ---- pseudo-terminal -------------------------------------------------------


@dataclass
class PtyPair:
    """A pseudo-terminal standing in for the RS-485 adapter.

    The daemon opens `slave_path` (or `link_path`); we read and write `master_fd`.
    We keep `slave_fd` open ourselves so reads on the master never hit EIO while
    the daemon has the port closed (before it starts, or between its reopens).
    """

    master_fd: int
    slave_path: str
    link_path: str | None
    slave_fd: int

    def close(self) -> None:
        """Close both ends and remove the symlink (if it still points at our slave)."""
        for fd in (self.master_fd, self.slave_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.master_fd = self.slave_fd = -1
        if self.link_path:
            try:
                if os.readlink(self.link_path) == self.slave_path:
                    os.unlink(self.link_path)
            except OSError:
                pass


def _replace_symlink(target: str, link_path: str) -> None:
    # Rename over the old name so the link never goes missing half-way.
    tmp = f"{link_path}.tmp{os.getpid()}"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.replace(tmp, link_path)


def open_pty(link_path: str | None = None) -> PtyPair:
    """A raw pty; with `link_path`, a symlink of that name pointing at its slave side."""
    master_fd, slave_fd = os.openpty()
    try:
        # Raw: no echo, no line editing, no CR/LF translation of our binary frames.
        tty.setraw(slave_fd)
        os.set_blocking(master_fd, False)
        slave_path = os.ttyname(slave_fd)
        if link_path:
            _replace_symlink(slave_path, link_path)
    except BaseException:
        os.close(master_fd)
        os.close(slave_fd)
        raise
    return PtyPair(master_fd, slave_path, link_path, slave_fd)


# ---- lines -----------------------------------------------------------------


class LineClosed(Exception):
    """The line hung up or was closed."""


class _FdLine:
    def __init__(self, fd: int, pty: PtyPair | None = None) -> None:
        self.fd = fd
        self.pty = pty
        os.set_blocking(fd, False)

    def fileno(self) -> int | None:
        return self.fd

    def read(self) -> bytes:
        try:
            data = os.read(self.fd, READ_CHUNK)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise LineClosed(str(exc)) from exc
        if not data:
            raise LineClosed("end of file")
        return data

    def read_wait(self, timeout_s: float) -> bytes:  # pragma: no cover - fd lines use select
        raise NotImplementedError

    def write(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                # Nobody drains the other side and its buffer is full: drop, as a bus would.
                return False
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF):
                    raise LineClosed(str(exc)) from exc
                raise
            view = view[n:]
        return True

    def close(self) -> None:
        if self.pty is not None:
            self.pty.close()
        else:
            try:
                os.close(self.fd)
            except OSError:
                pass


class _SerialLine:
    """An open pyserial port (or URL handler)."""

    def __init__(self, ser: Any) -> None:
        self.ser = ser
        self.pty = None
        try:
            fd = ser.fileno()
        except (AttributeError, OSError, ValueError, NotImplementedError):
            fd = None
        self._fd = fd if isinstance(fd, int) and fd >= 0 else None
        if self._fd is not None:
            ser.timeout = 0

    def fileno(self) -> int | None:
        return self._fd

    def read(self) -> bytes:
        import serial  # only lines built from pyserial objects get here

        try:
            waiting = self.ser.in_waiting
            return self.ser.read(waiting or 1)
        except (serial.SerialException, OSError) as exc:
            raise LineClosed(str(exc)) from exc

    def read_wait(self, timeout_s: float) -> bytes:
        import serial

        try:
            self.ser.timeout = timeout_s
            data = self.ser.read(1)
            if data:
                self.ser.timeout = 0
                data += self.ser.read(self.ser.in_waiting or 0)
            return data
        except (serial.SerialException, OSError) as exc:
            raise LineClosed(str(exc)) from exc

    def write(self, data: bytes) -> bool:
        import serial

        try:
            self.ser.write(data)
        except (serial.SerialException, OSError) as exc:
            raise LineClosed(str(exc)) from exc
        return True

    def close(self) -> None:
        try:
            self.ser.close()
        except Exception:  # closing a vanished port may raise anything pyserial likes
            pass


def _make_line(source: Any) -> _FdLine | _SerialLine:
    if isinstance(source, PtyPair):
        return _FdLine(source.master_fd, source)
    if isinstance(source, int):
        return _FdLine(source)
    if hasattr(source, "read") and hasattr(source, "write"):
        return _SerialLine(source)
    raise TypeError(f"need a PtyPair, a file descriptor or a pyserial port, not {source!r}")


# ---- frame log -------------------------------------------------------------


class FrameLog:
    """Thread-safe record of `(monotonic_time, direction, Message)`; direction is rx or tx."""

    def __init__(self) -> None:
        self._entries: list[LogEntry] = []
        self._cond = threading.Condition()

    def append(self, at: float, direction: str, msg: Message) -> None:
        with self._cond:
            self._entries.append((at, direction, msg))
            self._cond.notify_all()

    def snapshot(self) -> list[LogEntry]:
        with self._cond:
            return list(self._entries)

    def clear(self) -> None:
        with self._cond:
            self._entries.clear()

    def __len__(self) -> int:
        with self._cond:
            return len(self._entries)

    def __iter__(self) -> Iterator[LogEntry]:
        return iter(self.snapshot())

    def __getitem__(self, index: int) -> LogEntry:
        with self._cond:
            return self._entries[index]

    def wait_for(self, predicate: Callable[[list[LogEntry]], bool], timeout_s: float) -> bool:
        """Wait until predicate(entries) is true; False once timeout_s has passed."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if predicate(list(self._entries)):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # Woken by every new frame; the cap also catches predicates on other state.
                self._cond.wait(min(remaining, 0.1))


# ---- worker thread ---------------------------------------------------------


class _LineWorker:
    """A thread that sleeps on the line and a wake-up pipe until data or a deadline."""

    thread_name = "line-worker"

    def __init__(self, source: Any, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        # Held while simulated state changes; tests may hold it to change cars safely.
        self.lock = threading.RLock()
        self.decoder = FrameDecoder()
        self.errors: list[str] = []
        self._line: _FdLine | _SerialLine | None = _make_line(source)
        self._link_path = self._line.pty.link_path if self._line.pty else None
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._register_line()
        self._calls: list[tuple[Callable[[], Any], threading.Event, list[Any]]] = []
        self._calls_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- public --

    @property
    def pty(self) -> PtyPair | None:
        line = self._line
        return line.pty if line is not None else None

    @property
    def slave_path(self) -> str | None:
        pty = self.pty
        return pty.slave_path if pty else None

    @property
    def link_path(self) -> str | None:
        return self._link_path

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop the thread; True if it ended within timeout_s. The line stays open."""
        self._stopping.set()
        self._wake()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def close(self, timeout_s: float = 2.0) -> bool:
        """Stop and release the line, the pty and its symlink."""
        stopped = self.stop(timeout_s)
        if not self._closed:
            self._closed = True
            self._drop_line()
            self._selector.close()
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        return stopped

    def close_line(self, timeout_s: float = 2.0) -> None:
        """Simulate the adapter vanishing: close the pty and remove its symlink."""
        self._call(self._drop_line, timeout_s)

    def reopen_line(self, timeout_s: float = 2.0) -> PtyPair:
        """A new pty behind the same symlink name (the adapter coming back)."""
        if self._link_path is None:
            raise RuntimeError("reopen_line needs a pty created with a link path")
        return self._call(self._new_pty, timeout_s)

    def __enter__(self):
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- subclass hooks --

    def _on_tick(self, now: float) -> None:
        pass

    def _next_deadline(self, now: float) -> float:
        return now + MAX_WAIT_S

    def _on_message(self, msg: Message, now: float) -> None:
        pass

    # -- internals --

    def _register_line(self) -> None:
        line = self._line
        if line is not None and line.fileno() is not None:
            self._selector.register(line.fileno(), selectors.EVENT_READ, "line")

    def _drop_line(self) -> None:
        line, self._line = self._line, None
        if line is None:
            return
        fd = line.fileno()
        if fd is not None:
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError):
                pass
        line.close()
        self.decoder.flush()

    def _new_pty(self) -> PtyPair:
        self._drop_line()
        pair = open_pty(self._link_path)
        self._line = _FdLine(pair.master_fd, pair)
        self._register_line()
        return pair

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass  # pipe full (already woken) or closed

    def _call(self, fn: Callable[[], Any], timeout_s: float) -> Any:
        """Run fn in the worker thread (so the selector is never changed under it)."""
        if not self.running:
            with self.lock:
                return fn()
        done = threading.Event()
        result: list[Any] = []
        with self._calls_lock:
            self._calls.append((fn, done, result))
        self._wake()
        if not done.wait(timeout_s):
            raise TimeoutError("bus thread did not answer")
        if result and isinstance(result[0], BaseException):
            raise result[0]
        return result[0] if result else None

    def _run_calls(self) -> None:
        with self._calls_lock:
            calls, self._calls = self._calls, []
        for fn, done, result in calls:
            try:
                with self.lock:
                    result.append(fn())
            except BaseException as exc:  # handed back to the caller
                result.append(exc)
            done.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._run_calls()
            try:
                now = self.clock()
                with self.lock:
                    self._on_tick(now)
                    deadline = self._next_deadline(now)
                wait_s = min(max(deadline - self.clock(), 0.0), MAX_WAIT_S)
                line = self._line
                if line is not None and line.fileno() is None:
                    self._read_no_fd(line, wait_s)
                    continue
                for key, _ in self._selector.select(wait_s):
                    if key.data is None:
                        self._drain_wake()
                    else:
                        self._read_line()
            except Exception as exc:  # keep the bus alive; tests look at .errors
                log.exception("bus thread error")
                self.errors.append(repr(exc))
                self._stopping.wait(0.05)  # no tight loop if the error repeats

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _read_line(self) -> None:
        line = self._line
        if line is None:
            return
        try:
            data = line.read()
        except LineClosed as exc:
            log.warning("line closed: %s", exc)
            self._drop_line()
            return
        if data:
            self._feed(data)

    def _read_no_fd(self, line: _FdLine | _SerialLine, wait_s: float) -> None:
        try:
            data = line.read_wait(min(wait_s, NO_FD_READ_TIMEOUT_S))
        except LineClosed as exc:
            log.warning("line closed: %s", exc)
            self._drop_line()
            return
        if data:
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        now = self.clock()
        with self.lock:
            for raw in self.decoder.feed(data):
                try:
                    msg = parse_message(raw)
                except Exception as exc:  # a frame our parser rejects is not fatal
                    log.warning("cannot parse %s: %s", raw.hex(" ").upper(), exc)
                    continue
                self._on_message(msg, now)

    def _write(self, msg: Message) -> bool:
        line = self._line
        if line is None:
            return False
        try:
            return line.write(encode_frame(msg.to_body()))
        except LineClosed as exc:
            log.warning("line closed: %s", exc)
            self._drop_line()
            return False


# ---- the simulated bus -------------------------------------------------------


class SimBus(_LineWorker):
    """Simulated TWCs sharing one line; each answers only what is addressed to it."""

    thread_name = "sim-bus"

    def __init__(
        self,
        fd_or_serial: Any,
        twcs: Sequence[SimulatedTWC],
        clock: Clock = time.monotonic,
        on_frame: Callable[[float, str, Message], None] | None = None,
    ) -> None:
        self.twcs = list(twcs)
        self.log = FrameLog()
        # Called in the bus thread for every frame logged (the CLI's -v output).
        self.on_frame = on_frame
        self.dropped_frames = 0
        super().__init__(fd_or_serial, clock)

    @classmethod
    def on_pty(
        cls,
        twcs: Sequence[SimulatedTWC],
        link_path: str | None = None,
        clock: Clock = time.monotonic,
        **kwargs: Any,
    ) -> SimBus:
        return cls(open_pty(link_path), twcs, clock=clock, **kwargs)

    def wait_for(self, predicate: Callable[[list[LogEntry]], bool], timeout_s: float) -> bool:
        """Wait until predicate(log entries) holds; False after timeout_s."""
        return self.log.wait_for(predicate, timeout_s)

    def _record(self, at: float, direction: str, msg: Message) -> None:
        self.log.append(at, direction, msg)
        if self.on_frame is not None:
            self.on_frame(at, direction, msg)

    def _send(self, msgs: list[Message]) -> None:
        for msg in msgs:
            if self._write(msg):
                self._record(self.clock(), "tx", msg)
            else:
                self.dropped_frames += 1

    def _on_tick(self, now: float) -> None:
        for twc in self.twcs:
            self._send(twc.tick(now))

    def _next_deadline(self, now: float) -> float:
        if not self.twcs:
            return now + MAX_WAIT_S
        return min(twc.next_deadline(now) for twc in self.twcs)

    def _on_message(self, msg: Message, now: float) -> None:
        self._record(now, "rx", msg)
        for twc in self.twcs:
            self._send(twc.on_message(msg, now))


# ---- sniffer ---------------------------------------------------------------


def _wall_stamp() -> str:
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + ".%03d: " % int(now % 1 * 1000)


class Sniffer(_LineWorker):
    """Prints one line per frame seen on the line; never sends anything."""

    thread_name = "sniffer"

    def __init__(
        self,
        fd_or_serial: Any,
        out: TextIO | Callable[[str], None] | None = None,
        clock: Clock = time.monotonic,
        stamp: bool = True,
    ) -> None:
        self.out = out if out is not None else sys.stdout
        self.stamp = stamp
        self.frames = 0
        # Last master data per slave, shown next to the slave's answer as the original did.
        self._master_data: dict[int, bytes] = {}
        super().__init__(fd_or_serial, clock)

    def format(self, msg: Message) -> str:
        if isinstance(msg, MasterHeartbeat):
            self._master_data[msg.receiver_id] = bytes(msg.data)
        if isinstance(msg, SlaveHeartbeat):
            return heartbeat_line(msg.sender_id, msg.data, self._master_data.get(msg.sender_id))
        return describe(msg)

    def feed(self, data: bytes) -> None:
        """Decode and print raw bytes (also usable without the thread)."""
        self._feed(data)

    def _on_message(self, msg: Message, now: float) -> None:
        self.frames += 1
        line = (_wall_stamp() if self.stamp else "") + self.format(msg)
        if callable(self.out) and not hasattr(self.out, "write"):
            self.out(line)
        else:
            self.out.write(line + "\n")
            flush = getattr(self.out, "flush", None)
            if flush is not None:
                flush()
