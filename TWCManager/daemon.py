"""Composition root: wires config, settings, the master engine and the RS-485 line.

One thread owns the master. Everything else (the serial reader, later the IPC
server) posts events to its inbox; the loop sleeps until the next deadline or
the next event, so an idle daemon costs almost nothing.
"""
from __future__ import annotations

import logging
import queue
import time
from concurrent.futures import Future
from datetime import datetime
from typing import Callable

from . import bus, ipc, ipc_server, policy
from .config import Config, ipc_path, settings_path
from .green import CommandSource, GreenParams, GreenService
from .master import Master, MasterTiming
from .settings import SettingsSaveError, load_settings, save_settings

log = logging.getLogger("TWCManager.daemon")

CALL = "call"
STOP = "stop"


def limits_from(cfg: Config) -> policy.Limits:
    return policy.Limits(
        wiring_max_amps_all_twcs=float(cfg.twc.wiring_max_amps_all_twcs),
        wiring_max_amps_per_twc=float(cfg.twc.wiring_max_amps_per_twc),
        min_amps_per_twc=float(cfg.twc.min_amps_per_twc))


class Daemon:
    def __init__(self, cfg: Config, *, holds: policy.Holds = policy.Holds(),
                 timing: MasterTiming | None = None,
                 wall: Callable[[], datetime] = datetime.now,
                 green_source=None,
                 monotonic: Callable[[], float] = time.monotonic,
                 with_ipc: bool = True) -> None:
        self.cfg = cfg
        self._monotonic = monotonic
        self._wall = wall
        self.settings_file = settings_path(cfg)
        settings, _problems = load_settings(self.settings_file)  # it logs them, once
        g = cfg.green
        params = GreenParams.from_config(g)
        source = green_source or CommandSource(
            g.command, g.interval_s, g.stale_after_s, clock=monotonic,
            active=self._green_active, idle_interval_s=max(60.0, g.interval_s))
        self.green = GreenService(source, params)
        self.inbox: queue.Queue[tuple] = queue.Queue()
        self.master = Master(
            limits=limits_from(cfg), settings=settings, green_amps=self._green_decide,
            wall=wall, master_id=cfg.twc.master_id, master_sign=cfg.twc.master_sign,
            holds=holds,
            timing=timing or MasterTiming(slave_timeout_s=cfg.twc.slave_timeout_s),
            green_hours=(int(cfg.green.start_hour), int(cfg.green.end_hour)),
            on_settings_changed=self._save_settings)
        self.link = bus.SerialLink(cfg.twc.serial_port, cfg.twc.baud, self.inbox.put,
                                   reopen_interval_s=cfg.twc.reopen_interval_s)
        self.ipc: ipc_server.IpcServer | None = None
        if with_ipc:
            key = ipc.ipc_key(str(ipc_path(cfg)))
            self.ipc = ipc_server.IpcServer(key, self.inbox.put, mode=cfg.ipc.mode_bits)
            log.info("IPC queue %#010x (ftok of %s)", key, ipc_path(cfg))
        self.save_errors = 0
        self._running = False

    # ------------------------------------------------------------ outside API

    def _green_active(self) -> bool:
        """Is green tracking what sets the pool now? Read from the source's thread: only
        plain attribute reads of the master, no locks needed."""
        master = getattr(self, "master", None)
        if master is None or master.pool.source != policy.GREEN:
            return False
        start_hour, end_hour = master.green_hours
        return start_hour <= self._wall().hour < end_hour

    def _green_decide(self, now: float, car_amps: float, min_amps: float,
                      watts_per_amp: float | None):
        return self.green.decide(now, self._wall().timestamp(), car_amps, min_amps,
                                 watts_per_amp)

    def call(self, fn: Callable[[Master, float], list[bytes] | None]) -> None:
        """Run fn(master, now) on the loop thread; frames it returns are sent."""
        self.inbox.put((CALL, fn, self._monotonic()))

    def query(self, fn: Callable[[Master, float], object], timeout_s: float = 5.0) -> object:
        """Run fn(master, now) on the loop thread and return its result (for status
        readers: nothing else touches the master)."""
        done: Future = Future()

        def run(master: Master, now: float) -> None:
            try:
                done.set_result(fn(master, now))
            except Exception as exc:  # handed to the caller, not the loop
                done.set_exception(exc)

        self.call(run)
        return done.result(timeout=timeout_s)

    def link_status(self) -> dict:
        return {"up": self.link.up, "down_since": self.link.down_since,
                "error": self.link.last_error, "opens": self.link.opens}

    def stop(self) -> None:
        self.inbox.put((STOP, None, self._monotonic()))

    def save_settings_now(self, reason: str) -> None:
        self._save_settings(reason)

    # ------------------------------------------------------------------- loop

    def run(self) -> None:
        log.info("TWCManager master %04X on %s; settings in %s", self.master.master_id,
                 self.cfg.twc.serial_port, self.settings_file)
        self._running = True
        self.link.start()  # the linkready burst starts when the link is up
        self.green.start()
        if self.ipc:
            self.ipc.start()
        try:
            while self._running:
                timeout_s = self.master.next_deadline() - self._monotonic()
                try:
                    event = self.inbox.get(timeout=min(max(timeout_s, 0.0), 60.0))
                except queue.Empty:
                    event = None
                # Drain what is queued, but never past a deadline: a flood of IPC
                # requests must not delay a heartbeat.
                while event is not None and self._running:
                    self._guarded(self._handle, event)
                    if self._monotonic() >= self.master.next_deadline():
                        break
                    try:
                        event = self.inbox.get_nowait()
                    except queue.Empty:
                        event = None
                self._guarded(self._tick)
        finally:
            if self.ipc:
                self.ipc.stop()
            self.green.stop()
            self.link.stop()
            log.info("TWCManager stopped")

    def _guarded(self, fn: Callable, *args) -> None:
        # No exception may stall the bus (the original slept 5 s after one, §4).
        try:
            fn(*args)
        except Exception:
            log.exception("Internal error; carrying on")

    def _tick(self) -> None:
        self.link.write(self.master.on_tick(self._monotonic()))

    def _handle(self, event: tuple) -> None:
        kind, payload, _at = event
        now = self._monotonic()
        if kind == bus.RX:
            self.link.write(self.master.on_bytes(payload, now))
        elif kind == CALL:
            self.link.write(payload(self.master, now) or [])
        elif kind == bus.LINK_UP:
            # Announce on every (re)open so slaves find us at once; frames written
            # before the port was open would have been lost.
            self.master.start(now)
        elif kind == bus.LINK_DOWN:
            pass  # logged by the link; slaves time out on their own after 26 s
        elif kind == ipc_server.IPC_REQUEST:
            try:
                self._handle_ipc(payload, now)
            finally:
                self.ipc.done()
        elif kind == STOP:
            self._running = False

    def _handle_ipc(self, body: bytes, now: float) -> None:
        try:
            request = ipc.unpack(body)
        except ipc.BadRequest as exc:
            log.error("IPC: bad request ignored: %s", exc)
            return
        if (request.time_field, request.ident, request.text) == (0, 0, ""):
            return  # the wake-up the IPC thread gets at stop
        now_wall_s = self._wall().timestamp()
        text = ipc.redact(request.text)
        why = ipc.too_old_or_future(request.time_field, now_wall_s)
        if why:
            log.warning("IPC: dropped %r, %s", text[:80], why)
            return
        log.debug("Web query: %r, id %d, time %d", text, request.ident, request.time_field)
        ctx = ipc.Context(now=now, now_wall_s=now_wall_s, save_settings=self._save_settings,
                          send=lambda frame: self.link.write([frame]),
                          extra_state=self._extra_state,
                          green_history=lambda: list(self.green.history.samples))
        try:
            reply = ipc.handle_request(request.text, self.master, ctx)
        except ipc.BadRequest as exc:
            log.error("IPC %r: %s", text[:80], exc)
            return
        self.ipc.send(ipc.reply_bodies(request, reply))

    def _extra_state(self) -> dict:
        return {"link": self.link_status(), "green": self.green.status(self._monotonic()),
                "settings_file": str(self.settings_file), "save_errors": self.save_errors}

    def _save_settings(self, reason: str) -> None:
        try:
            save_settings(self.settings_file, self.master.settings)
        except SettingsSaveError as exc:
            self.save_errors += 1
            log.error("Could not save settings (%s): %s", reason, exc)
