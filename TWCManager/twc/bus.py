"""The RS-485 line: pyserial with a reader thread that reopens a vanished adapter.

The reader blocks in the kernel (select inside pyserial) and posts what it reads
to the daemon's inbox, so the daemon never polls. A device path, a pty path or a
pyserial URL (`socket://`, `loop://`, `rfc2217://`) all work.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import serial

log = logging.getLogger("TWCManager.bus")

# Events posted to the inbox: (kind, payload, monotonic time)
RX = "rx"
LINK_UP = "link_up"
LINK_DOWN = "link_down"

# What a missing adapter or a bad port setting raises: logged as a plain line, no traceback.
LINE_ERRORS = (serial.SerialException, OSError, ValueError)


class SerialLink:
    def __init__(self, port: str, baud: int, post: Callable[[tuple], None], *,
                 reopen_interval_s: float = 3.0, read_timeout_s: float = 1.0,
                 write_timeout_s: float = 0.5, relog_after_s: float = 600.0) -> None:
        self.port = port
        self.baud = baud
        self._post = post
        self.reopen_interval_s = reopen_interval_s
        self.read_timeout_s = read_timeout_s
        self.write_timeout_s = write_timeout_s
        self._serial: serial.SerialBase | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.up = False
        self.down_since: float | None = time.monotonic()
        self.last_error: str | None = "not opened yet"
        self.opens = 0
        self.open_attempts = 0
        self.frames_dropped = 0
        self.relog_after_s = relog_after_s
        self._logged_at: dict[str, float] = {}  # error text -> when last logged
        self._quiet = False  # the last failure was a repeat not logged: nor is the reopen

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rs485-reader", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 3.0) -> None:
        self._stop.set()
        self._close()
        if self._thread:
            self._thread.join(timeout_s)

    def write(self, frames: list[bytes]) -> None:
        if not frames:
            return
        ser = self._serial
        if ser is None:
            self.frames_dropped += len(frames)
            return
        try:
            ser.write(b"".join(frames))
        except (serial.SerialException, OSError) as exc:
            # The reader thread notices too and reopens; losing these frames is fine,
            # the next heartbeat follows within a second.
            self.frames_dropped += len(frames)
            self._fail(f"write failed: {exc}")

    # ------------------------------------------------------------- internals

    def _run(self) -> None:
        # Only stop() ends this thread: any error, expected or not, closes the line and
        # reopens it later (a dead reader would leave the daemon running with no bus).
        while not self._stop.is_set():
            opening = self._serial is None
            try:
                if opening:
                    self._open()
                else:
                    self._read_once()
            except Exception as exc:  # noqa: BLE001 - see above
                if self._stop.is_set():
                    break  # stop() closed the port under the read
                what = f"cannot open {self.port}" if opening else "read failed"
                hint = available_ports_hint(self.port) if opening else ""
                self._fail(f"{what}: {self._describe(exc)}{hint}", exc)
                self._stop.wait(self.reopen_interval_s)

    def _read_once(self) -> None:
        ser = self._serial
        # TypeError/AttributeError here are pyserial internals after a close from
        # another thread (write() failing); they reopen like any other error.
        data = ser.read(ser.in_waiting or 1) if ser else b""
        if data:
            self._post((RX, data, time.monotonic()))

    def _open(self) -> None:
        self.open_attempts += 1
        ser = serial.serial_for_url(self.port, baudrate=self.baud, bytesize=8, parity="N",
                                    stopbits=1, timeout=self.read_timeout_s,
                                    write_timeout=self.write_timeout_s)
        with self._lock:
            self._serial = ser
        self.opens += 1
        was_down_s = time.monotonic() - self.down_since if self.down_since else 0.0
        self.up, self.down_since, self.last_error = True, None, None
        if not self._quiet:
            log.info("RS-485 link up on %s%s", self.port,
                     f" after {was_down_s:.0f} s down" if self.opens > 1 else "")
        self._post((LINK_UP, self.opens, time.monotonic()))

    @staticmethod
    def _describe(exc: BaseException) -> str:
        # The usual line errors read as before; anything else names its type.
        if isinstance(exc, LINE_ERRORS):
            return str(exc)
        return f"{type(exc).__name__}: {exc}"

    def _fail(self, error: str, exc: BaseException | None = None) -> None:
        with self._lock:
            was_up = self.up
            self.up = False
            self.last_error = error
            if self.down_since is None:
                self.down_since = time.monotonic()
        self._close()
        self._log_failure(error, exc, was_up)
        if was_up:
            try:
                self._post((LINK_DOWN, error, time.monotonic()))
            except Exception:  # noqa: BLE001 - the inbox failing must not kill the reader
                log.exception("RS-485: could not post link down")

    def _log_failure(self, error: str, exc: BaseException | None, was_up: bool) -> None:
        """One line per distinct error: a line that keeps failing the same way (or opens
        and fails again at once) is logged again only after relog_after_s."""
        now = time.monotonic()
        logged_at = self._logged_at.get(error)
        self._quiet = logged_at is not None and now - logged_at < self.relog_after_s
        if self._quiet:
            return
        if len(self._logged_at) >= 32:  # error texts may vary without end; keep a few
            self._logged_at.clear()
        self._logged_at[error] = now
        # A traceback only for what is not a plain line error: that is a bug to report.
        unexpected = exc is not None and not isinstance(exc, LINE_ERRORS)
        log.error("RS-485 %s%s; reopening every %g s", "link down: " if was_up else "", error,
                  self.reopen_interval_s, exc_info=exc if unexpected else None)

    def _close(self) -> None:
        with self._lock:
            ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001 - the port is being dropped either way
                log.debug("RS-485: error closing %s", self.port, exc_info=True)


def available_ports_hint(port: str) -> str:
    """For a port that does not exist: the serial ports that do (a typo, or the adapter on
    another name), so the log says what to put in [twc] serial_port."""
    import os

    if "://" in port or os.path.exists(port):
        return ""
    try:
        from serial.tools import list_ports

        names = sorted(p.device for p in list_ports.comports())
    except Exception:   # noqa: BLE001 - a hint must never break the reopen loop
        return ""
    return ("; serial ports here: " + ", ".join(names)) if names else \
        "; no serial port is plugged in (is the RS-485 adapter connected?)"
