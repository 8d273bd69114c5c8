"""The daemon's PI30 poller (edge): one thread reads the inverter every `interval_s` and applies
the priority changes asked for over IPC between two readings, so every exchange on the port is
serialised (and each holds the port's flock against the `pi30` command too).

The last good reading is kept with its time; once older than `stale_after_s` the status says
`stale` and shows no figures: a dead link is never shown as 0 W or 0 %.
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from typing import Callable

from ..core.interfaces import reading_state
from .codec import ParseError
from .inverter import SETTINGS, read_status, set_priority
from .link import LinkError, Pi30Link

log = logging.getLogger("TWCManager.pi30")

MAX_PENDING = 8
KEPT_CHANGES = 8      # the outcomes shown in the status, newest last


class Pi30Source:
    def __init__(self, link: Pi30Link, interval_s: float, *, stale_after_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.link = link
        self.interval_s = interval_s
        # Three polls missed, and never before the poll under way has had its timeout: a
        # reading must not turn stale while the failure that explains it is still pending.
        self.stale_after_s = stale_after_s or 3 * interval_s + link.timeout_s
        self._clock, self._wall = clock, wall
        self._lock = threading.Lock()
        self._latest: tuple[dict, float, float] | None = None   # figures, at, at_wall
        self.last_error: str | None = None
        self.last_change: str | None = None
        self._requests: queue.Queue[dict] = queue.Queue(MAX_PENDING)
        # Each asked change and its outcome, so a web form can tell the user what happened.
        self._changes: deque[dict] = deque(maxlen=KEPT_CHANGES)
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pi30", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout_s)
        self.link.close()

    def request(self, what: str, value: str, reason: str) -> int:
        """Ask for a priority change (applied by the poller's thread); ValueError if invalid.
        Returns the change's id; its outcome appears under that id in `status()["changes"]`."""
        if what not in SETTINGS or value not in SETTINGS[what][2]:
            raise ValueError(f"{what} {value!r}: expected one of "
                             + ", ".join(SETTINGS.get(what, (None, None, ()))[2]))
        with self._lock:
            change = {"id": next(self._ids), "what": what, "value": value, "reason": reason,
                      "state": "pending", "message": None}
            try:
                self._requests.put_nowait(change)
            except queue.Full:
                raise ValueError("too many inverter changes waiting; try again") from None
            self._changes.append(change)
        self._wake.set()
        return change["id"]

    # ------------------------------------------------------------------ thread

    def _run(self) -> None:
        while not self._stop.is_set():
            self._apply_requests()
            self.poll_once()
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def _apply_requests(self) -> None:
        while True:
            try:
                change = self._requests.get_nowait()
            except queue.Empty:
                return
            what, value, reason = change["what"], change["value"], change["reason"]
            try:
                done = set_priority(self.link, what, value)
            except (LinkError, ParseError) as exc:
                log.error("Inverter %s %s (%s) failed: %s", what, value, reason, exc)
                with self._lock:
                    self.last_error = str(exc)
                    change.update(state="failed", message=str(exc))
                continue
            log.info("Inverter: %s (%s)", done, reason)
            with self._lock:
                self.last_change = f"{done} ({reason})"
                change.update(state="done", message=done)

    def poll_once(self) -> dict | None:
        try:
            figures = read_status(self.link)
        except (LinkError, ParseError) as exc:
            with self._lock:
                first = self.last_error is None
                self.last_error = str(exc)
            if first:
                log.error("Inverter reading failed: %s", exc)
            return None
        with self._lock:
            recovered = self.last_error is not None and self._latest is not None
            self._latest = (figures, self._clock(), self._wall())
            self.last_error = None
        if recovered:
            log.info("Inverter answers again")
        return figures

    # ------------------------------------------------------------------ status

    def status(self, now: float) -> dict:
        """The figures of the last good reading while fresh, with the state and times."""
        with self._lock:
            latest, error = self._latest, self.last_error
            changes = [dict(change) for change in self._changes]
        fresh = latest is not None and now - latest[1] <= self.stale_after_s
        figures = dict(latest[0]) if fresh else {}
        return {"state": reading_state(fresh, error), "port": self.link.port,
                "last_update_at": latest[2] if latest else None, "last_error": error,
                "last_change": self.last_change, "changes": changes, **figures}
