"""The `pi30` command (decisions.md §6.1) as a subprocess against an inverter stand-in on a real
pty: status as text and JSON, raw, set with read-back and no write when already in force, and
the exit statuses."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import tty
from pathlib import Path

import pytest

from TWCManager.pi30 import codec

ROOT = Path(__file__).resolve().parent.parent
QPIGS = ("000.0 00.0 230.0 49.9 0161 0119 003 460 57.50 012 100 0069 0014 103.8 57.45 00000 "
         "00110110 00 00 00856 010")


def frame(payload: str) -> bytes:
    body = b"(" + payload.encode()
    return body + codec.crc_bytes(body) + b"\r"


class Inverter:
    """Answers by command like a PI30 unit; POP/PCP change its QPIRI unless `refuse`."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.priorities = [0, 0]           # output, charger (QPIRI fields 16, 17)
        self.ignore_setters = False        # ACK but keep the old value (a lying firmware)
        self.silent = False
        self.requests: list[str] = []
        threading.Thread(target=self._run, daemon=True).start()

    def qpiri(self) -> str:
        return (f"230.0 21.7 230.0 50.0 21.7 5000 4000 48.0 46.0 42.0 56.4 54.0 0 10 010 1 "
                f"{self.priorities[0]} {self.priorities[1]} 6 01 0 0 54.0 0 1")

    def answer(self, command: str) -> str | None:
        if self.silent:
            return None
        fixed = {"QMOD": "B", "QPIGS": QPIGS, "QPIWS": "00000100000000001000000000000000",
                 "QPI": "PI30"}
        if command in fixed:
            return fixed[command]
        if command == "QPIRI":
            return self.qpiri()
        for prefix, index, top in (("POP", 0, 2), ("PCP", 1, 3)):
            if command.startswith(prefix) and command[3:].isdigit() and int(command[3:]) <= top:
                if not self.ignore_setters:
                    self.priorities[index] = int(command[3:])
                return "ACK"
        return "NAK"

    def _run(self) -> None:
        buffer = b""
        while True:
            try:
                buffer += os.read(self.master, 256)
            except OSError:
                return
            while b"\r" in buffer:
                line, _, buffer = buffer.partition(b"\r")
                command = line[:-2].decode("ascii", "replace")   # without its CRC
                self.requests.append(command)
                reply = self.answer(command)
                if reply is not None:
                    os.write(self.master, frame(reply))

    def close(self) -> None:
        for fd in (self.master, self._slave):
            os.close(fd)


@pytest.fixture
def inverter():
    inv = Inverter()
    yield inv
    inv.close()


def pi30(inv, *words, timeout_s="1"):
    return subprocess.run([sys.executable, "-m", "TWCManager.pi30", "--port", inv.path,
                           "--timeout-s", timeout_s, *words], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_status_json_has_the_contract_keys_as_numbers(inverter):
    done = pi30(inverter, "--json", "status")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["mode"] == "B" and status["grid_v"] == 0.0 and status["ac_out_w"] == 119
    assert (status["battery_v"], status["battery_soc_pct"], status["pv_w"]) == (57.5, 100, 856)
    assert (status["output_priority"], status["charger_priority"]) == ("utility", "utility")
    assert status["warnings"] == ["line fail", "overload"]


def test_status_for_a_person(inverter):
    done = pi30(inverter, "status")
    assert done.returncode == 0
    assert "Battery:   100 %, 57.50 V, charging 690 W" in done.stdout
    assert "Priority:  output utility, charger utility" in done.stdout


def test_set_writes_only_when_it_differs_and_reads_back(inverter):
    done = pi30(inverter, "set", "output-priority", "sbu")
    assert done.returncode == 0 and "set to sbu (was utility; read back)" in done.stdout
    assert inverter.requests == ["QPIRI", "POP02", "QPIRI"]
    inverter.requests.clear()
    done = pi30(inverter, "set", "output-priority", "sbu")
    assert done.returncode == 0 and "already sbu: nothing sent" in done.stdout
    assert inverter.requests == ["QPIRI"]                    # no EEPROM write
    assert pi30(inverter, "set", "charger-priority", "solar-only").returncode == 0
    assert inverter.priorities == [2, 3]


def test_an_acknowledged_setter_that_does_not_read_back_is_refused(inverter):
    inverter.ignore_setters = True
    done = pi30(inverter, "set", "charger-priority", "solar")
    assert done.returncode == 3 and "QPIRI still says utility" in done.stdout


def test_raw_nak_unreachable_busy_and_usage(inverter):
    raw = pi30(inverter, "raw", "QPI")
    assert (raw.returncode, raw.stdout) == (0, "PI30\n")
    nak = pi30(inverter, "raw", "POP09")
    assert (nak.returncode, nak.stdout) == (3, "Inverter refused POP09\n")
    holder = os.open(inverter.path, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        busy = pi30(inverter, "status", timeout_s="0.3")
        assert busy.returncode == 4 and "another process is using" in busy.stderr
    finally:
        os.close(holder)
    inverter.silent = True
    gone = pi30(inverter, "status", timeout_s="0.3")
    assert (gone.returncode, gone.stdout) == (255, "Inverter unreachable\n")
    assert pi30(inverter, "set", "output-priority", "battery").returncode == 2
    assert pi30(inverter, "frobnicate").returncode == 2
