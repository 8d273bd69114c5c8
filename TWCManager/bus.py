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


class SerialLink:
    def __init__(self, port: str, baud: int, post: Callable[[tuple], None], *,
                 reopen_interval_s: float = 3.0, read_timeout_s: float = 1.0,
                 write_timeout_s: float = 0.5) -> None:
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
        self.frames_dropped = 0

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
        while not self._stop.is_set():
            if self._serial is None and not self._open():
                self._stop.wait(self.reopen_interval_s)
                continue
            ser = self._serial
            try:
                data = ser.read(ser.in_waiting or 1) if ser else b""
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: pyserial internals after a close from another thread.
                if not self._stop.is_set():
                    self._fail(f"read failed: {exc}")
                    self._stop.wait(self.reopen_interval_s)
                continue
            if data:
                self._post((RX, data, time.monotonic()))

    def _open(self) -> bool:
        try:
            ser = serial.serial_for_url(self.port, baudrate=self.baud, bytesize=8, parity="N",
                                        stopbits=1, timeout=self.read_timeout_s,
                                        write_timeout=self.write_timeout_s)
        except (serial.SerialException, OSError, ValueError) as exc:
            error = f"cannot open {self.port}: {exc}"
            if error != self.last_error:
                log.error("RS-485 %s; retrying every %.0f s", error, self.reopen_interval_s)
            self.last_error = error
            return False
        with self._lock:
            self._serial = ser
        self.opens += 1
        was_down_s = time.monotonic() - self.down_since if self.down_since else 0.0
        self.up, self.down_since, self.last_error = True, None, None
        log.info("RS-485 link up on %s%s", self.port,
                 f" after {was_down_s:.0f} s down" if self.opens > 1 else "")
        self._post((LINK_UP, self.opens, time.monotonic()))
        return True

    def _fail(self, error: str) -> None:
        with self._lock:
            was_up = self.up
            self.up = False
            self.last_error = error
            if self.down_since is None:
                self.down_since = time.monotonic()
        self._close()
        if was_up:
            log.error("RS-485 link down: %s; reopening every %.0f s", error,
                      self.reopen_interval_s)
            self._post((LINK_DOWN, error, time.monotonic()))

    def _close(self) -> None:
        with self._lock:
            ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except (serial.SerialException, OSError):
                pass
