"""The Linky meter's customer output (TIC, "historique" mode) as a local Tempo source (tempo.md
§2): no internet needed. 1200 baud, 7 bits, even parity; groups `LF label SP value SP checksum
CR` between STX and ETX; the checksum is the sum of label, SP and value, & 0x3F, + 0x20.

`PTEC` is the current period and colour (`HPJB` … `HCJR`: peak/off-peak, blue/white/red) and
`DEMAIN` the next Tempo day's colour (`BLEU`, `BLAN`, `ROUG`, `----` while unknown). Both are
read in Tempo days (06:00 → 06:00), so `PTEC` gives today's and `DEMAIN` tomorrow's.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Callable

from .calendar import TempoCalendar
from .tempo import BLUE, RED, WHITE, TempoPrices, tempo_day

log = logging.getLogger("TWCManager.tempo")

STX, ETX, LF, CR = 0x02, 0x03, 0x0A, 0x0D
DEMAIN = {"BLEU": BLUE, "BLAN": WHITE, "ROUG": RED}
PTEC_COLOUR = {"B": BLUE, "W": WHITE, "R": RED}
MAX_GROUP_BYTES = 64
REOPEN_S = 5.0


def checksum(data: bytes) -> int:
    return (sum(data) & 0x3F) + 0x20


def parse_group(group: bytes) -> tuple[str, str] | None:
    """`label SP value SP checksum` (without LF and CR) -> (label, value); None if damaged."""
    if len(group) < 5 or group[-2] != 0x20:
        return None
    body, check = group[:-2], group[-1]
    if checksum(body) != check:
        return None
    label, sep, value = body.partition(b" ")
    if not sep or not label:
        return None
    try:
        return label.decode("ascii"), value.decode("ascii")
    except UnicodeDecodeError:
        return None


class TicDecoder:
    """Bytes in any pieces -> good groups; damaged ones are counted and dropped."""

    def __init__(self) -> None:
        self._group: bytearray | None = None
        self.bad_groups = 0

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        out = []
        for byte in data:
            byte &= 0x7F                   # 7-bit data: a port opened 8N1 keeps the parity bit
            if byte == LF:
                self._group = bytearray()
            elif byte == CR and self._group is not None:
                parsed = parse_group(bytes(self._group))
                if parsed is None:
                    self.bad_groups += 1
                else:
                    out.append(parsed)
                self._group = None
            elif byte in (STX, ETX):
                self._group = None
            elif self._group is not None:
                self._group.append(byte)
                if len(self._group) > MAX_GROUP_BYTES:
                    self._group, self.bad_groups = None, self.bad_groups + 1
        return out


def colours_from(groups: list[tuple[str, str]]) -> tuple[str | None, str | None, str | None]:
    """(today's colour from PTEC, tomorrow's from DEMAIN, the PTEC text) of a batch."""
    today = tomorrow = ptec = None
    for label, value in groups:
        if label == "PTEC" and len(value) >= 4 and value[:2] in ("HP", "HC"):
            ptec, today = value, PTEC_COLOUR.get(value[3:4])
        elif label == "DEMAIN":
            tomorrow = DEMAIN.get(value)
    return today, tomorrow, ptec


class LinkySource:
    """Reads the TIC in a thread and teaches the calendar what the meter says."""

    def __init__(self, port: str, calendar: TempoCalendar, now: Callable,
                 prices: TempoPrices = TempoPrices(), opener: Callable | None = None) -> None:
        self.port, self.calendar, self._now, self.prices = port, calendar, now, prices
        self._opener = opener or _open_serial
        self.decoder = TicDecoder()
        self.ptec: str | None = None
        self.last_error: str | None = None
        self.last_frame_at: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="linky", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout_s)

    def handle(self, data: bytes) -> None:
        groups = self.decoder.feed(data)
        if not groups:
            return
        today, tomorrow, ptec = colours_from(groups)
        now = self._now()
        day = tempo_day(now, self.prices)
        if ptec:
            self.ptec, self.last_frame_at = ptec, now.isoformat(timespec="seconds")
        if today:
            self.calendar.learn(day, today, "linky", now)
        if tomorrow:
            self.calendar.learn(day + timedelta(days=1), tomorrow, "linky", now)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                port = self._opener(self.port)
            except OSError as exc:
                self._failed(f"cannot open {self.port}: {exc}")
                continue
            try:
                while not self._stop.is_set():
                    self.handle(port.read(256))
                    if self.last_error:
                        log.info("Linky TIC: reading again")
                        self.last_error = None
            except OSError as exc:
                self._failed(f"{self.port}: {exc}")
            finally:
                port.close()

    def _failed(self, message: str) -> None:
        if message != self.last_error:
            log.error("Linky TIC: %s", message)
        self.last_error = message
        self._stop.wait(REOPEN_S)

    def status(self) -> dict:
        return {"port": self.port, "ptec": self.ptec, "last_frame_at": self.last_frame_at,
                "bad_groups": self.decoder.bad_groups, "last_error": self.last_error}


def _open_serial(port: str):
    import serial

    try:
        return serial.Serial(port, 1200, bytesize=serial.SEVENBITS, parity=serial.PARITY_EVEN,
                             stopbits=serial.STOPBITS_ONE, timeout=1.0)
    except serial.SerialException as exc:
        raise OSError(str(exc)) from None

