"""One PI30 exchange at a time on a real pty: the test plays the inverter on the other end."""
from __future__ import annotations

import fcntl
import os
import threading
import tty

import pytest

from TWCManager.pi30 import codec
from TWCManager.pi30.link import HIDRAW, SERIAL, InverterBusy, NoAnswer, Pi30Link, Refused, port_type

from .util import wait_until


def frame(payload: str) -> bytes:
    body = b"(" + payload.encode()
    return body + codec.crc_bytes(body) + b"\r"


class Inverter:
    """Answers each request line with the next of `answers` (bytes, or None for silence)."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave   # kept open so the pty lives while the link reopens
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buffer = b""
        while not self._stop:
            try:
                data = os.read(self.master, 256)
            except OSError:
                return
            buffer += data
            while b"\r" in buffer:
                line, _, buffer = buffer.partition(b"\r")
                self.requests.append(line + b"\r")
                answer = self.answers.pop(0) if self.answers else None
                if answer:
                    os.write(self.master, answer)

    def close(self) -> None:
        self._stop = True
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def inverter():
    made = []

    def make(answers):
        made.append(Inverter(answers))
        return made[-1]

    yield make
    for inv in made:
        inv.close()


def test_an_exchange_sends_the_frame_and_returns_the_payload(inverter):
    inv = inverter([frame("PI30")])
    link = Pi30Link(inv.path, timeout_s=2)
    assert link.exchange("QPI") == "PI30"
    assert inv.requests == [codec.request("QPI")]
    link.close()


def test_a_crc_failure_is_retried_once_then_reported(inverter):
    bad = bytearray(frame("PI30"))
    bad[-2] ^= 0xFF
    inv = inverter([bytes(bad), frame("PI30")])
    link = Pi30Link(inv.path, timeout_s=2)
    assert link.exchange("QPI") == "PI30" and link.crc_failures == 1
    inv.answers = [bytes(bad), bytes(bad)]
    with pytest.raises(NoAnswer, match="bad answer twice .*CRC"):
        link.exchange("QPI")
    assert len(inv.requests) == 4
    link.close()


def test_silence_is_no_answer_within_the_timeout_and_nak_is_refused(inverter):
    inv = inverter([None, frame("NAK")])
    link = Pi30Link(inv.path, timeout_s=0.3)
    with pytest.raises(NoAnswer, match="no answer within 0.3 s"):
        link.exchange("QPIGS")
    with pytest.raises(Refused, match="Inverter refused POP05"):
        link.exchange("POP05")
    link.close()


def test_a_second_talker_waits_then_gives_up_busy(inverter):
    inv = inverter([frame("PI30")])
    other = os.open(inv.path, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)      # the daemon in the middle of an exchange
        link = Pi30Link(inv.path, timeout_s=0.3)
        with pytest.raises(InverterBusy, match="another process is using"):
            link.exchange("QPI")
        assert inv.requests == []              # nothing interleaved on the wire
        fcntl.flock(other, fcntl.LOCK_UN)
        assert link.exchange("QPI") == "PI30"
        link.close()
    finally:
        os.close(other)


def test_the_port_is_opened_again_after_it_failed(inverter, tmp_path):
    first = inverter([frame("PI30")])
    link_path = tmp_path / "ttyPI30"
    link_path.symlink_to(first.path)
    link = Pi30Link(str(link_path), timeout_s=0.5)
    assert link.exchange("QPI") == "PI30" and link.opens == 1
    first.close()                                  # the adapter vanishes
    with pytest.raises(NoAnswer):
        link.exchange("QPI")
    second = inverter([frame("PI30")])             # and comes back under the same name
    link_path.unlink()
    link_path.symlink_to(second.path)
    assert wait_until(lambda: _answers(link), timeout_s=5)
    assert link.opens == 2
    link.close()


def _answers(link) -> bool:
    try:
        return link.exchange("QPI") == "PI30"
    except NoAnswer:
        return False


def test_port_type_by_name_or_configured():
    assert port_type("/dev/hidraw0") == HIDRAW and port_type("/dev/ttyUSB0") == SERIAL
    assert port_type("/dev/ttyUSB0", "hidraw") == HIDRAW
    with pytest.raises(ValueError):
        port_type("/dev/ttyUSB0", "usb")


def test_hidraw_writes_8_byte_reports(inverter):
    inv = inverter([frame("PI30")])
    link = Pi30Link(inv.path, porttype=HIDRAW, timeout_s=2)
    assert link.exchange("QPIGS") == "PI30"
    # 8 + 8 bytes on the wire, the last report NUL-padded; the inverter sees the frame.
    assert inv.requests[0].replace(b"\0", b"") == codec.request("QPIGS")
    link.close()
