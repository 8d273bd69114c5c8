"""Composition root: wires config, settings, the site core, the RS-485 engine, the meter and
the IPC server.

One thread owns the home (site core + master engine). Everything else (the serial reader, the
IPC reader, the meter) posts events to its inbox or keeps a reading the loop reads; the loop
sleeps until the next deadline or the next event, so an idle daemon costs almost nothing.
"""
from __future__ import annotations

import logging
import queue
from concurrent.futures import Future
from typing import Callable

from .config import Config, history_path, ipc_path, settings_path
from .core import policy
from .core.interfaces import Clock, SiteMeter, SiteReadings, SystemClock
from .core.site import SiteDriver, site_from
from .energy import make_meter
from .forecast import forecast_from
from .history import EnergyRecorder, reading_time
from .mqtt import mqtt_from
from .ipc import commands, server as ipc_server, wire
from .ipc.status import Context, Home
from .pi30.link import Pi30Link
from .pi30.source import Pi30Source
from .settings_file import SettingsSaveError, load_settings, save_settings
from .plan import spec_from
from .plan.runner import PlanRunner
from .tariff.setup import tempo_from
from .twc import bus
from .twc.master import Master, MasterTiming

log = logging.getLogger("TWCManager.daemon")

CALL = "call"
STOP = "stop"


class Daemon:
    def __init__(self, cfg: Config, *, holds: policy.Holds = policy.Holds(),
                 timing: MasterTiming | None = None, clock: Clock | None = None,
                 meter: SiteMeter | None = None, with_ipc: bool = True) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.settings_file = settings_path(cfg)
        settings, _problems = load_settings(self.settings_file)  # it logs them, once
        self.tempo = tempo_from(cfg, self.clock)
        self.site = site_from(cfg, settings, holds,
                              tariff=self.tempo.tariff if self.tempo else None)
        self.meter = meter or make_meter(cfg.green, clock=self.clock.monotonic,
                                         active=self._green_active)
        self.inbox: queue.Queue[tuple] = queue.Queue()
        self.master = Master(
            limits=self.site.limits,
            planner=SiteDriver(self.site, self.clock.now, self._readings,
                               on_changes=self._save_settings),
            master_id=cfg.twc.master_id, master_sign=cfg.twc.master_sign,
            timing=timing or MasterTiming(slave_timeout_s=cfg.twc.slave_timeout_s))
        self.home = Home(self.site, self.master)
        self.inverter: Pi30Source | None = None
        if cfg.pi30.port:
            p = cfg.pi30
            self.inverter = Pi30Source(
                Pi30Link(p.port, porttype=p.porttype or None, baud=p.baud, timeout_s=p.timeout_s),
                p.interval_s, clock=self.clock.monotonic)
        self.plan: PlanRunner | None = None
        self.forecast = forecast_from(cfg, self.clock) if self.tempo else None
        if self.tempo:
            self.plan = PlanRunner(self.tempo, spec_from(cfg), cfg.green.mode, self.inverter,
                                   automate=cfg.battery.automate, now=self.clock.now,
                                   forecast=self.forecast)
        self.history = EnergyRecorder(history_path(cfg), keep_days=cfg.history.keep_days)
        self.mqtt = mqtt_from(cfg, self)
        self.link = bus.SerialLink(cfg.twc.serial_port, cfg.twc.baud, self.inbox.put,
                                   reopen_interval_s=cfg.twc.reopen_interval_s)
        self.ipc: ipc_server.IpcServer | None = None
        if with_ipc:
            key = wire.ipc_key(str(ipc_path(cfg)))
            self.ipc = ipc_server.IpcServer(key, self.inbox.put, mode=cfg.ipc.mode_bits)
            log.info("IPC queue %#010x (ftok of %s)", key, ipc_path(cfg))
        self.save_errors = 0
        self._running = False

    # ------------------------------------------------------------ outside API

    def _green_active(self) -> bool:
        """Is green tracking what sets the pool now? Read from the meter's thread: only
        plain attribute reads, no locks needed."""
        site = getattr(self, "site", None)
        return site is not None and site.green_active(self.clock.now())

    def _readings(self) -> SiteReadings:
        status = self.meter.status(self.clock.monotonic())
        attempted = status.get("reads", 1) + status.get("failures", 1) > 0
        return SiteReadings(meter=self.meter.latest(), meter_attempted=attempted,
                            meter_error=status.get("last_error"))

    def call(self, fn: Callable[[Home, float], list[bytes] | None]) -> None:
        """Run fn(home, now) on the loop thread; frames it returns are sent."""
        self.inbox.put((CALL, fn, self.clock.monotonic()))

    def query(self, fn: Callable[[Home, float], object], timeout_s: float = 5.0) -> object:
        """Run fn(home, now) on the loop thread and return its result (for status
        readers: nothing else touches the home)."""
        done: Future = Future()

        def run(home: Home, now: float) -> None:
            try:
                done.set_result(fn(home, now))
            except Exception as exc:  # handed to the caller, not the loop
                done.set_exception(exc)

        self.call(run)
        return done.result(timeout=timeout_s)

    def link_status(self) -> dict:
        return {"up": self.link.up, "down_since": self.link.down_since,
                "error": self.link.last_error, "opens": self.link.opens}

    def stop(self) -> None:
        self.inbox.put((STOP, None, self.clock.monotonic()))

    # ------------------------------------------------------------------- loop

    def run(self) -> None:
        log.info("TWCManager master %04X on %s; settings in %s", self.master.master_id,
                 self.cfg.twc.serial_port, self.settings_file)
        self._running = True
        self.link.start()  # the linkready burst starts when the link is up
        # The edges with a thread of their own, in start order (stopped in reverse); the IPC
        # reader last, once everything it may ask is there.
        services = [s for s in (self.meter, self.history, self.inverter, self.tempo,
                                self.forecast, self.mqtt, self.ipc) if s is not None]
        for service in services:
            service.start()
        try:
            while self._running:
                timeout_s = self.master.next_deadline() - self.clock.monotonic()
                try:
                    event = self.inbox.get(timeout=min(max(timeout_s, 0.0), 60.0))
                except queue.Empty:
                    event = None
                # Drain what is queued, but never past a deadline: a flood of IPC
                # requests must not delay a heartbeat.
                while event is not None and self._running:
                    self._guarded(self._handle, event)
                    if self.clock.monotonic() >= self.master.next_deadline():
                        break
                    try:
                        event = self.inbox.get_nowait()
                    except queue.Empty:
                        event = None
                self._guarded(self._tick)
                self._guarded(self._book_energy)
                if self.plan:
                    self._guarded(self.plan.step, self.clock.monotonic())
        finally:
            for service in reversed(services):
                service.stop()
            self.link.stop()
            log.info("TWCManager stopped")

    def _guarded(self, fn: Callable, *args) -> None:
        # No exception may stall the bus (the original slept 5 s after one, §4).
        try:
            fn(*args)
        except Exception:
            log.exception("Internal error; carrying on")

    def _tick(self) -> None:
        self.link.write(self.master.on_tick(self.clock.monotonic()))

    def _book_energy(self) -> None:
        """The meter's newest reading into the energy totals, with the cars' draw and the
        price now (cheap: numbers in memory; the history thread writes them)."""
        ended = self.site.sessions.ended
        if ended:
            self.history.add_sessions(ended[:])
            ended.clear()
        reading = self.meter.latest()
        if not self.history.is_new(reading):
            return
        price = self.tempo.price_label(reading_time(reading)) if self.tempo else None
        self.history.step(reading, self.site.car_w, price)

    def _handle(self, event: tuple) -> None:
        kind, payload, _at = event
        now = self.clock.monotonic()
        if kind == bus.RX:
            self.link.write(self.master.on_bytes(payload, now))
        elif kind == CALL:
            self.link.write(payload(self.home, now) or [])
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
            request = wire.unpack(body)
        except wire.BadRequest as exc:
            log.error("IPC: bad request ignored: %s", exc)
            return
        if (request.time_field, request.ident, request.text) == (0, 0, ""):
            return  # the wake-up the IPC thread gets at stop
        now_wall_s = self.clock.now().timestamp()
        text = wire.redact(request.text)
        why = wire.too_old_or_future(request.time_field, now_wall_s)
        if why:
            log.warning("IPC: dropped %r, %s", text[:80], why)
            return
        log.debug("Web query: %r, id %d, time %d", text, request.ident, request.time_field)
        try:
            reply = commands.handle_request(request.text, self.home, self.context(now))
        except wire.BadRequest as exc:
            log.error("IPC %r: %s", text[:80], exc)
            return
        self.ipc.send(wire.reply_bodies(request, reply))

    def context(self, now: float) -> Context:
        return Context(now=now, now_wall_s=self.clock.now().timestamp(),
                       save_settings=self._save_settings,
                       send=lambda frame: self.link.write([frame]),
                       extra_state=self._extra_state, inverter=self.inverter, tempo=self.tempo,
                       plan=self.plan, history=self.history,
                       green_history=lambda: list(self.site.green_service.history.samples))

    def green_status(self, now: float) -> dict:
        """The meter's state and the green tracker's figures, as getGreenStatus shows them."""
        return {**self.meter.status(now), **self.site.green_service.status(self.meter.latest())}

    def _extra_state(self) -> dict:
        now = self.clock.monotonic()
        return {"link": self.link_status(), "green": self.green_status(now),
                "inverter": self.inverter.status(now) if self.inverter else None,
                "tariff": self.tempo.status() if self.tempo else None,
                "plan": self.plan.status() if self.plan else None,
                "energy": self.history.totals(),
                "settings_file": str(self.settings_file), "save_errors": self.save_errors}

    def _save_settings(self, reason: str) -> None:
        try:
            save_settings(self.settings_file, self.site.settings)
        except SettingsSaveError as exc:
            self.save_errors += 1
            log.error("Could not save settings (%s): %s", reason, exc)
