"""The `solaredge` command kept running as the site meter: `solaredge --stream`.

A per-call command costs a Python start and a pymodbus import per reading (~0.1 CPU-s here,
several times that on a Pi), too much for a reading every 2 s. The stream child answers one
JSON line per request line instead; it still connects, reads and disconnects the inverter per
request (the inverter serves one Modbus client at a time), so only the start-up is saved.

`StreamSource` is a `CommandSource` (same thread, interval, idle interval, status keys and
states) whose reading is one request to that child. The child is killed and started again when
it hangs (no answer within timeout_s), dies (end of its output) or prints something that is not
an answer; a child that keeps failing before its first answer is restarted after a growing
pause. A failing child never refreshes latest(), so the reading ages to STALE and green
tracking offers 0 A (decisions §4.10).
"""
from __future__ import annotations

import json
import logging
import os
import select
import shlex
import signal
import subprocess
import threading
import time
from typing import Callable

from ..core.interfaces import MeterReading
from .command import CommandSource, parse_output, resolve_command

log = logging.getLogger("TWCManager.green")

# The solaredge command bounds a request at 2.2 s itself (solaredge.SOFT_DEADLINE_S) and then
# answers with an error line; only a child silent past its own bound is hung.
ANSWER_TIMEOUT_S = 3.0
# A new child first starts Python and imports pymodbus: ~0.1 s here, a second or two on a Pi.
START_ALLOWANCE_S = 10.0
# A child that fails before answering once is restarted after interval_s, then twice as long
# each time, up to this.
MAX_BACKOFF_S = 60.0
MAX_LINE_BYTES = 64 * 1024
REQUEST = b"read\n"
# The mode options of the solaredge command that mean "grid watts"; -solar and -house print
# other figures, so a command with those keeps running per call, exactly as configured.
_GRID_MODES = ("-grid", "--grid", "--json")


def stream_argv(command: str) -> list[str] | None:
    """The `--stream` form of a solaredge command that reads the grid (`solaredge … -grid`,
    `python -m TWCManager.solaredge … --json`), or None for any other command."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if not argv:
        return None
    if os.path.basename(argv[0]) == "solaredge":
        first = 1
    elif "-m" in argv[:-1] and argv[argv.index("-m") + 1] == "TWCManager.solaredge":
        first = argv.index("-m") + 2
    else:
        return None
    modes = [i for i in range(first, len(argv)) if argv[i] in _GRID_MODES]
    if len(modes) != 1:
        return None
    argv[modes[0]] = "--stream"
    return resolve_command(argv)


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.returncode is not None:
        return   # reaped: its pid may belong to somebody else by now
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:   # already gone
        pass


class _ChildTrouble(Exception):
    """The child cannot be trusted any more; kind names the problem for the log."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class StreamSource(CommandSource):
    """Keeps `argv` (a `--stream` command) running and asks it for a reading every interval."""

    def __init__(self, argv: list[str], interval_s: float, stale_after_s: float, *,
                 command: str | None = None, timeout_s: float = ANSWER_TIMEOUT_S,
                 start_allowance_s: float = START_ALLOWANCE_S,
                 max_backoff_s: float = MAX_BACKOFF_S,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 active: Callable[[], bool] = lambda: True,
                 idle_interval_s: float = 60.0) -> None:
        super().__init__(command or shlex.join(argv), interval_s, stale_after_s,
                         timeout_s=timeout_s, clock=clock, wall=wall, active=active,
                         idle_interval_s=idle_interval_s)
        self.argv = list(argv)
        self.start_allowance_s = start_allowance_s
        self.max_backoff_s = max_backoff_s
        self.restarts = 0            # children started after the first
        self._started_children = 0
        self._child_lock = threading.Lock()   # spawn vs. stop from another thread
        self._answered = False       # has the current child answered at least once?
        self._buffer = b""
        self._backoff_s = 0.0
        # Real time, not the injected clock: a pause must pass even under a frozen test clock.
        self._spawn_not_before = 0.0

    # -- life cycle ------------------------------------------------------------------------

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        with self._child_lock:   # a spawn under way either sees _stop or is seen here
            if self._proc is not None:
                _kill_group(self._proc)   # the reader blocked on its output sees the end
        if self._thread:
            self._thread.join(timeout_s)
        # Pipes are closed only here or by the reader thread itself: a descriptor closed under
        # a thread in select() could be reused by another file and read by mistake.
        self._kill()

    def child_pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    def _spawn(self) -> subprocess.Popen:
        with self._child_lock:
            if self._stop.is_set():
                raise _ChildTrouble("stopped", "stopped")
            try:
                # Its own session: stop() kills the whole group, and a Ctrl-C meant for the
                # daemon in a terminal does not kill the child under it first.
                proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        bufsize=0, start_new_session=True)
            except OSError as exc:
                raise _ChildTrouble("start", f"cannot start {self.argv[0]!r}: {exc}") from None
            self._proc, self._buffer, self._answered = proc, b"", False
            self._started_children += 1
            if self._started_children > 1:
                self.restarts += 1
            else:
                log.info("Energy source %r kept running as: %s", self.command, shlex.join(self.argv))
            return proc

    def _kill(self) -> None:
        with self._child_lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        _kill_group(proc)
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            proc.wait(5.0)   # reap it: no zombie, no orphan
        except subprocess.TimeoutExpired:
            log.error("Energy stream child %d did not die after SIGKILL", proc.pid)

    # -- one reading ---------------------------------------------------------------------

    def read_once(self) -> MeterReading | None:
        if self._stop.is_set():
            return None
        try:
            proc = self._proc
            if proc is None:
                if time.monotonic() < self._spawn_not_before:
                    return None   # pausing after a child that kept failing
                proc = self._spawn()
            self.last_attempt_at = self._clock()
            line = self._ask(proc)
        except _ChildTrouble as trouble:
            return self._child_failed(trouble)
        except Exception as exc:   # a bug here must not end the thread (the meter would go
            log.exception("Energy stream: internal error")   # stale with no word why)
            return self._child_failed(_ChildTrouble("internal", f"internal error: {exc!r}"))
        return self._answer(line)

    def _ask(self, proc: subprocess.Popen) -> bytes:
        fd = proc.stdout.fileno()
        # One line per request: anything already waiting was not asked for, and taking it as
        # this request's answer would pass an old reading off as new.
        try:
            if not self._buffer and select.select([fd], [], [], 0)[0]:
                self._buffer = os.read(fd, 4096)
                if not self._buffer:
                    raise self._ended(proc)   # it died since the last answer
        except (OSError, ValueError):
            raise self._ended(proc) from None
        if self._buffer:
            raise _ChildTrouble("garbage", "printed a line nobody asked for")
        try:
            proc.stdin.write(REQUEST)
        except (OSError, ValueError):   # it has died, or stop() closed the pipe
            raise self._ended(proc) from None
        timeout_s = self.timeout_s + (0 if self._answered else self.start_allowance_s)
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _ChildTrouble("hung", f"no answer within {timeout_s:g} s")
            try:
                ready = select.select([fd], [], [], left)[0]
                chunk = os.read(fd, 4096) if ready else None
            except (OSError, ValueError):
                raise self._ended(proc) from None
            if chunk == b"":
                raise self._ended(proc)
            self._buffer += chunk or b""
            if len(self._buffer) > MAX_LINE_BYTES:
                raise _ChildTrouble("garbage", f"a line over {MAX_LINE_BYTES} bytes")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _ended(self, proc: subprocess.Popen) -> _ChildTrouble:
        try:
            code = proc.wait(1.0)
        except subprocess.TimeoutExpired:
            return _ChildTrouble("died", "closed its output")
        return _ChildTrouble("died", f"exited with status {code}")

    def _answer(self, line: bytes) -> MeterReading | None:
        text = line.decode("utf-8", "replace").strip()
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and "error" in data:
            # A working child reporting the inverter's failure: it stays.
            self._child_works()
            return self._failed(str(data.get("detail") or data["error"]), kind="inverter")
        try:
            grid, solar, house = parse_output(text)
        except ValueError as exc:
            return self._child_failed(_ChildTrouble("garbage", f"unreadable answer: {exc}"))
        self._child_works()
        return self._store(grid, solar, house)

    def _child_works(self) -> None:
        self._answered = True
        self._backoff_s = 0.0

    def _child_failed(self, trouble: _ChildTrouble) -> None:
        if self._stop.is_set():
            self._kill()
            return None
        answered = self._answered
        self._kill()
        if answered:
            # It had been working: a fresh one at the next reading.
            self._backoff_s = 0.0
        else:
            self._backoff_s = min(self.max_backoff_s, max(self.interval_s, 2 * self._backoff_s))
        self._spawn_not_before = time.monotonic() + self._backoff_s
        pause = f" in {self._backoff_s:g} s" if self._backoff_s > self.interval_s else ""
        log.debug("Energy stream child: %s; restarting%s", trouble, pause)
        return self._failed(f"stream {trouble}; restarting{pause}", kind=trouble.kind)
