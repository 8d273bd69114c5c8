"""The tariff as the configuration describes it (the daemon and the plan command share this)."""
from __future__ import annotations

import logging

from ..config import Config, read_secret
from ..config_checks import minutes_of
from ..core.interfaces import Clock
from .calendar import TempoCalendar
from .linky import LinkySource
from .rte import RteClient
from .service import TempoService
from .tempo import TempoPrices

log = logging.getLogger("TWCManager.tempo")


def prices_from(cfg: Config) -> TempoPrices:
    t = cfg.tariff
    return TempoPrices(
        blue_peak_eur_kwh=t.blue_peak_eur_kwh, blue_offpeak_eur_kwh=t.blue_offpeak_eur_kwh,
        white_peak_eur_kwh=t.white_peak_eur_kwh, white_offpeak_eur_kwh=t.white_offpeak_eur_kwh,
        red_peak_eur_kwh=t.red_peak_eur_kwh, red_offpeak_eur_kwh=t.red_offpeak_eur_kwh,
        export_eur_kwh=t.export_eur_kwh, offpeak_start_min=minutes_of(t.offpeak_start),
        offpeak_end_min=minutes_of(t.offpeak_end), day_start_min=minutes_of(t.day_start))


def tempo_from(cfg: Config, clock: Clock) -> TempoService | None:
    """The Tempo service, or None when `[tariff] kind` is not "tempo"."""
    if cfg.tariff.kind != "tempo":
        return None
    t = cfg.tempo
    client = None
    if t.source == "rte":
        client = RteClient(t.rte_url, t.client_id, read_secret(t.client_secret_file, "tempo.client_secret_file"),
                           timeout_s=t.timeout_s, clock=clock.monotonic)
    calendar, prices = TempoCalendar(t.cache_file or None), prices_from(cfg)
    linky = LinkySource(t.linky_port, calendar, clock.now, prices) if t.linky_port else None
    return TempoService(calendar, prices, clock, client=client, interval_s=t.poll_interval_s,
                        linky=linky)
