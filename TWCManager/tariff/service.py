"""The daemon's Tempo edge: a thread that keeps the calendar filled from RTE (yesterday to
tomorrow), the schedule of its polls, the tariff the site core asks for prices, and the status
shown on the page, over IPC and in /api/v1/state.

Polls: at start; then, while today's or tomorrow's colour is unknown, every `interval_s` (30 min:
RTE publishes tomorrow from about 06:00 to 11:00, at no guaranteed time); once both are known,
at the next day boundary (06:00). A failure backs off 60 s, 120 s, … up to `interval_s`, and
never sooner than a 429's Retry-After.
"""
from __future__ import annotations

import logging
import threading
from datetime import date, datetime, timedelta

from ..core.interfaces import Clock, Pricing
from .calendar import TempoCalendar
from .rte import RteClient, RteError
from .tempo import (OFFPEAK, PARIS, TempoPrices, colour_or_assumption, day_start, next_change, price_at,
                    tempo_day)

log = logging.getLogger("TWCManager.tempo")

FIRST_BACKOFF_S = 60.0
MAX_WAIT_S = 60.0     # the thread re-reads the clock at least this often (clock changes, DST)


def next_poll(now: datetime, colours: dict[date, str], failures: int,
              retry_after_s: float | None, interval_s: float,
              prices: TempoPrices = TempoPrices()) -> datetime:
    """When to ask RTE next (pure)."""
    if failures:
        wait_s = min(FIRST_BACKOFF_S * 2 ** (failures - 1), interval_s)
        return now + timedelta(seconds=max(wait_s, retry_after_s or 0.0))
    today = tempo_day(now, prices)
    if today not in colours or today + timedelta(days=1) not in colours:
        return now + timedelta(seconds=interval_s)
    return day_start(today + timedelta(days=1), prices)


class TempoTariff:
    """The core's `Tariff` for Tempo: the price at a moment from the known (or carefully
    assumed) colour of its Tempo day."""
    name = "tempo"

    def __init__(self, calendar: TempoCalendar, prices: TempoPrices) -> None:
        self.calendar, self.prices = calendar, prices

    def import_eur_kwh(self, when: datetime) -> float | None:
        return price_at(self.calendar.colours(), when, self.prices)[0]

    def export_eur_kwh(self, when: datetime) -> float | None:
        return self.prices.export_eur_kwh

    def pricing(self, when: datetime) -> Pricing | None:
        """Now, and tonight's off-peak of the same Tempo day (the night after a red day is
        billed red)."""
        colours = self.calendar.colours()
        now_eur, assumed, _period = price_at(colours, when, self.prices)
        return Pricing(now_eur, self.prices.price(assumed.colour, OFFPEAK),
                       self.prices.export_eur_kwh)


class TempoService:
    def __init__(self, calendar: TempoCalendar, prices: TempoPrices, clock: Clock,
                 client: RteClient | None = None, interval_s: float = 1800.0,
                 linky=None) -> None:
        self.calendar, self.prices, self.clock = calendar, prices, clock
        self.client = client              # None: no RTE (manual colours, or the Linky only)
        self.linky = linky                # tariff.linky.LinkySource, or None
        self.interval_s = interval_s
        self.tariff = TempoTariff(calendar, prices)
        self.failures = 0
        self.retry_after_s: float | None = None
        self.last_error: str | None = None
        self.last_poll_at: datetime | None = None
        self.next_poll_at: datetime | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.calendar.load(self.clock.now().astimezone(PARIS).date())
        if self.linky is not None:
            self.linky.start()
        if self.client is None:
            return
        self._thread = threading.Thread(target=self._run, name="tempo", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self.linky is not None:
            self.linky.stop(timeout_s)
        if self._thread:
            self._thread.join(timeout_s)

    def poll_now(self) -> None:
        self._wake.set()
        self.next_poll_at = None

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self.clock.now()
            if self.next_poll_at is None or now >= self.next_poll_at:
                self.poll_once(now)
            wait_s = (self.next_poll_at - self.clock.now()).total_seconds()
            self._wake.wait(min(max(wait_s, 0.0), MAX_WAIT_S))
            self._wake.clear()

    def poll_once(self, now: datetime) -> bool:
        """Ask RTE for yesterday..tomorrow and learn what it says; False on failure."""
        assert self.client is not None
        today = tempo_day(now, self.prices)
        self.last_poll_at = now
        try:
            days = self.client.calendar(today - timedelta(days=1), today + timedelta(days=1))
        except RteError as exc:
            self.failures += 1
            self.retry_after_s = exc.retry_after_s
            if self.last_error != str(exc):
                log.error("Tempo: %s", exc)
            self.last_error = str(exc)
        else:
            if self.failures:
                log.info("Tempo: RTE answers again")
            self.failures, self.retry_after_s, self.last_error = 0, None, None
            for day, colour, _updated in days:
                self.calendar.learn(day, colour, "rte", now)
        self.next_poll_at = next_poll(now, self.calendar.colours(), self.failures,
                                      self.retry_after_s, self.interval_s, self.prices)
        return self.failures == 0

    def price_label(self, when: datetime) -> tuple[str, float]:
        """("red_peak", 0.7295): what a grid kWh bought at `when` is booked under."""
        price, assumed, which = price_at(self.calendar.colours(), when, self.prices)
        return f"{assumed.colour.lower()}_{which}", price

    # ------------------------------------------------------------------ status

    def status(self, now: datetime | None = None) -> dict:
        now = now or self.clock.now()
        colours = self.calendar.colours()
        today = tempo_day(now, self.prices)
        price, assumed, which = price_at(colours, now, self.prices)
        return {
            "kind": "tempo",
            "source": "rte" if self.client else "manual",
            "tempo_today": colours.get(today),
            "tempo_tomorrow": colours.get(today + timedelta(days=1)),
            "today": self._day(today, colours),
            "tomorrow": self._day(today + timedelta(days=1), colours),
            "period": which,
            "price_eur_kwh": price,
            "price_assumed": not assumed.known,
            "export_eur_kwh": self.prices.export_eur_kwh,
            "offpeak_start": _hhmm(self.prices.offpeak_start_min),
            "offpeak_end": _hhmm(self.prices.offpeak_end_min),
            "next_change_at": next_change(now, self.prices).isoformat(timespec="seconds"),
            "last_poll_at": _iso(self.last_poll_at),
            "next_poll_at": _iso(self.next_poll_at) if self.client else None,
            "last_error": self.last_error or self.calendar.cache_error,
            "linky": self.linky.status() if self.linky is not None else None,
        }

    def _day(self, day: date, colours: dict[date, str]) -> dict:
        entry = self.calendar.get(day)
        assumed = colour_or_assumption(colours, day)
        return {"date": day.isoformat(), "colour": entry.colour if entry else None,
                "source": entry.source if entry else None,
                "learnt_at": entry.learnt_at if entry else None,
                "assumed": None if entry else assumed.colour,
                "note": None if entry else assumed.reason,
                "peak_eur_kwh": self.prices.price(assumed.colour, "peak"),
                "offpeak_eur_kwh": self.prices.price(assumed.colour, "offpeak")}


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _iso(when: datetime | None) -> str | None:
    return when.isoformat(timespec="seconds") if when else None

