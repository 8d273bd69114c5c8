"""The serial reader thread (bus.SerialLink) on a real pseudo-terminal: it outlives any
error in open, read or post, logs it once, and reopens the line."""
from __future__ import annotations

import logging
import os
import threading

import pytest

from TWCManager.twc import bus
from TWCManager.twc.bus import SerialLink

from .util import wait_until

RETRY_S = 0.05  # short reopen interval so several retries happen within a test


class Inbox:
    """The daemon's inbox as the link sees it: a thread-safe list of posted events."""

    def __init__(self, fail_rx_times: int = 0) -> None:
        self.events: list[tuple] = []
        self._lock = threading.Lock()
        self._fail_rx_times = fail_rx_times

    def post(self, event: tuple) -> None:
        if event[0] == bus.RX and self._fail_rx_times > 0:
            self._fail_rx_times -= 1
            raise RuntimeError("inbox refused the event")
        with self._lock:
            self.events.append(event)

    def kinds(self) -> list[str]:
        with self._lock:
            return [kind for kind, _, _ in self.events]

    def rx_bytes(self) -> bytes:
        with self._lock:
            return b"".join(payload for kind, payload, _ in self.events if kind == bus.RX)


@pytest.fixture
def pty():
    """(master fd for the test to write on, path the link opens)."""
    master_fd, slave_fd = os.openpty()
    yield master_fd, os.ttyname(slave_fd)
    os.close(master_fd)
    os.close(slave_fd)


@pytest.fixture
def stop_links():
    links: list[SerialLink] = []
    yield links.append
    for link in links:
        link.stop()
        assert link._thread is not None and not link._thread.is_alive(), "reader did not stop"


def bus_errors(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "TWCManager.bus" and r.levelno >= logging.ERROR]


def test_unexpected_open_error_is_logged_once_and_retried(pty, stop_links, caplog):
    # 2**31 baud makes pyserial raise OverflowError (not a SerialException) on open.
    _, path = pty
    inbox = Inbox()
    link = SerialLink(path, 2**31, inbox.post, reopen_interval_s=RETRY_S, read_timeout_s=0.05)
    stop_links(link)
    link.start()
    assert wait_until(lambda: "OverflowError" in (link.last_error or ""), timeout_s=5)
    assert path in link.last_error
    assert wait_until(lambda: link.open_attempts >= 6, timeout_s=10)
    assert link._thread.is_alive()
    assert not link.up and link.opens == 0 and bus.LINK_UP not in inbox.kinds()
    # once per distinct error, not once per retry
    errors = [r for r in bus_errors(caplog) if "OverflowError" in r.getMessage()]
    assert len(errors) == 1


def test_unexpected_read_error_reopens_and_data_flows_again(pty, stop_links, caplog):
    master_fd, path = pty
    inbox = Inbox()
    link = SerialLink(path, 9600, inbox.post, reopen_interval_s=RETRY_S, read_timeout_s=0.05)
    stop_links(link)
    link.start()
    assert wait_until(lambda: link.up, timeout_s=5)

    def broken_read(size=1):
        raise RuntimeError("driver bug")

    # The reader is (at most read_timeout_s) inside the real read; its next call breaks.
    link._serial.read = broken_read
    assert wait_until(lambda: link.opens >= 2 and link.up, timeout_s=5)
    assert link._thread.is_alive()
    assert bus.LINK_DOWN in inbox.kinds()
    assert any("RuntimeError: driver bug" in r.getMessage() for r in bus_errors(caplog))
    os.write(master_fd, b"\xC0hello\xC0")
    assert wait_until(lambda: b"hello" in inbox.rx_bytes(), timeout_s=5)


def test_failing_post_reopens_and_data_flows_again(pty, stop_links, caplog):
    master_fd, path = pty
    inbox = Inbox(fail_rx_times=1)
    link = SerialLink(path, 9600, inbox.post, reopen_interval_s=RETRY_S, read_timeout_s=0.05)
    stop_links(link)
    link.start()
    assert wait_until(lambda: link.up, timeout_s=5)
    os.write(master_fd, b"lost")
    assert wait_until(lambda: link.opens >= 2 and link.up, timeout_s=5)
    assert any("inbox refused the event" in r.getMessage() for r in bus_errors(caplog))
    os.write(master_fd, b"kept")
    assert wait_until(lambda: b"kept" in inbox.rx_bytes(), timeout_s=5)
    assert link._thread.is_alive()
