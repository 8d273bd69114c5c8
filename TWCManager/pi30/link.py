"""One PI30 exchange at a time on a serial line or a hidraw device (edge; shared/spec/pi30.md §1).

`Pi30Link.exchange("QPIGS")` sends the request and returns the answer's payload. Each exchange
holds an exclusive `flock` on the open port (decisions §6.1): the daemon and the `pi30` command
wait up to their timeout for each other instead of interleaving frames (two talkers on one port
is a common field failure), then give up with `InverterBusy`. A CRC failure is retried once,
then reported; no answer within the timeout is `NoAnswer`; NAK is `Refused`. A port that
fails (the USB adapter vanished) is closed and opened again at the next exchange.
"""
from __future__ import annotations

import fcntl
import os
import select
import time
from typing import Callable

from .codec import Answer, AnswerDecoder, request

SERIAL, HIDRAW = "serial", "hidraw"
HID_REPORT_BYTES = 8
LOCK_POLL_S = 0.02


class LinkError(Exception):
    """The exchange did not give an answer; the message says why."""


class NoAnswer(LinkError):
    """Nothing valid came within the timeout (exit 255, `Inverter unreachable`)."""


class Refused(LinkError):
    """The inverter answered NAK (exit 3)."""


class InverterBusy(LinkError):
    """Another process held the port for the whole timeout (exit 4)."""


def port_type(port: str, porttype: str | None = None) -> str:
    """`serial` or `hidraw`: as configured, else by the device's name."""
    if porttype:
        if porttype not in (SERIAL, HIDRAW):
            raise ValueError(f"porttype {porttype!r}: expected serial or hidraw")
        return porttype
    return HIDRAW if "hidraw" in os.path.basename(port) else SERIAL


class Pi30Link:
    def __init__(self, port: str, *, porttype: str | None = None, baud: int = 2400,
                 timeout_s: float = 3.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.port = port
        self.porttype = port_type(port, porttype)
        self.baud = baud
        self.timeout_s = timeout_s
        self._clock = clock
        self._fd: int | None = None
        self._serial = None
        self.opens = 0
        self.crc_failures = 0

    # ---------------------------------------------------------------- the port

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        try:
            if self.porttype == SERIAL:
                import serial

                self._serial = serial.Serial(self.port, self.baud, bytesize=8, parity="N",
                                             stopbits=1, timeout=0, write_timeout=self.timeout_s)
                self._fd = self._serial.fileno()
            else:
                self._fd = os.open(self.port, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, ValueError) as exc:
            self.close()
            raise NoAnswer(f"cannot open {self.port}: {exc}") from None
        self.opens += 1
        return self._fd

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except OSError:
                pass
        elif self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd, self._serial = None, None

    def _lock(self, fd: int, deadline: float) -> None:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if self._clock() >= deadline:
                    raise InverterBusy(f"another process is using {self.port}; gave up after "
                                       f"{self.timeout_s:g} s") from None
                time.sleep(LOCK_POLL_S)

    # ----------------------------------------------------------- one exchange

    def exchange(self, command: str) -> str:
        """The payload of the answer to `command`; raises NoAnswer, Refused, InverterBusy."""
        deadline = self._clock() + self.timeout_s
        fd = self._open()
        try:
            self._lock(fd, deadline)
            try:
                return self._exchange_locked(fd, command, deadline)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:   # the adapter vanished: open it again next time
            self.close()
            raise NoAnswer(f"{self.port}: {exc}") from None

    def _exchange_locked(self, fd: int, command: str, deadline: float) -> str:
        error = None
        for _attempt in range(2):   # a CRC failure is retried once
            self._drain(fd)
            self._write(fd, request(command))
            answer = self._read_answer(fd, deadline)
            if answer is None:
                break
            if answer.payload is None:
                self.crc_failures += 1
                error = answer.error
                continue
            if answer.nak:
                raise Refused(f"Inverter refused {command}")
            return answer.payload
        why = f"bad answer twice ({error})" if error else f"no answer within {self.timeout_s:g} s"
        raise NoAnswer(f"{command} on {self.port}: {why}")

    def _write(self, fd: int, frame: bytes) -> None:
        if self.porttype == HIDRAW:
            for i in range(0, len(frame), HID_REPORT_BYTES):
                os.write(fd, frame[i:i + HID_REPORT_BYTES].ljust(HID_REPORT_BYTES, b"\0"))
        else:
            view = memoryview(frame)
            while view:
                view = view[os.write(fd, view):]

    def _drain(self, fd: int) -> None:
        # What an earlier, abandoned exchange left behind is not this request's answer.
        while select.select([fd], [], [], 0)[0]:
            if not os.read(fd, 256):
                return

    def _read_answer(self, fd: int, deadline: float) -> Answer | None:
        decoder = AnswerDecoder()
        while True:
            left = deadline - self._clock()
            if left <= 0:
                return None
            if not select.select([fd], [], [], left)[0]:
                continue
            data = os.read(fd, 256)
            if not data:
                raise OSError("the port closed")
            answers = decoder.feed(data)
            if answers:
                return answers[0]
