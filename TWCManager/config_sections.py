"""Configuration sections added in round 2 (decisions.md §6.1): the tariff and Tempo, the
battery plan, the solar forecast, MQTT, the history store and Boost/Eco's night schedule.
`config.py` loads and checks them like the others."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TariffConfig:
    kind: str = "none"                  # "none" (round 1 behaviour) or "tempo"
    # Paris local time; the Tempo day runs from day_start to the next day's day_start.
    offpeak_start: str = "22:00"
    offpeak_end: str = "06:00"
    day_start: str = "06:00"
    # EUR/kWh incl. taxes (regulated prices from 1 August 2026); update at each decision.
    blue_peak_eur_kwh: float = 0.1654
    blue_offpeak_eur_kwh: float = 0.1356
    white_peak_eur_kwh: float = 0.1921
    white_offpeak_eur_kwh: float = 0.1536
    red_peak_eur_kwh: float = 0.7295
    red_offpeak_eur_kwh: float = 0.1615
    export_eur_kwh: float = 0.04


@dataclass(frozen=True)
class TempoConfig:
    source: str = "manual"              # "rte" (the API, needs an account) or "manual"
    rte_url: str = "https://digital.iservices.rte-france.com"
    client_id: str = ""
    client_secret_file: str = ""        # one line: the application's secret
    cache_file: str = "/var/lib/twcmanager/tempo.json"
    poll_interval_s: float = 1800.0     # while tomorrow is unknown
    timeout_s: float = 10.0
    linky_port: str = ""                # the Linky's TIC adapter (historique mode); "" = none


@dataclass(frozen=True)
class BatteryConfig:
    # Let the plan set the PI30's priorities (writes the inverter's EEPROM, only on change).
    automate: bool = False
    capacity_kwh: float = 5.0
    min_soc_pct: float = 20.0           # the reserve SBU keeps (its back-to-grid point)
    peak_load_kwh: float = 6.0          # the inverter's load over a 06:00-22:00 peak
    sbu_on_white: bool = False          # also carry the load on white peaks
    normal_output_priority: str = "sbu"
    forecast_share: float = 0.8         # of the day's forecast sun that reaches the load


@dataclass(frozen=True)
class ForecastConfig:
    source: str = "none"                # "none", "homeassistant" or "forecast_solar"
    ha_url: str = "http://homeassistant.local:8123"
    ha_token_file: str = ""             # a long-lived access token, one line
    ha_entity_today: str = "sensor.energy_production_today"
    ha_entity_tomorrow: str = "sensor.energy_production_tomorrow"
    forecast_solar_url: str = "https://api.forecast.solar"
    latitude: float = 0.0
    longitude: float = 0.0
    declination: float = 30.0           # panel tilt, degrees
    azimuth: float = 0.0                # degrees from south (-90 east, 90 west)
    kwp: float = 0.0
    interval_s: float = 3600.0
    timeout_s: float = 10.0


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""
    password_file: str = ""             # one line; empty = no password
    client_id: str = ""                 # empty = a random one
    prefix: str = "twcmanager"
    discovery_prefix: str = "homeassistant"
    interval_s: float = 10.0


@dataclass(frozen=True)
class HistoryConfig:
    file: str = ""          # empty = history.sqlite next to the settings file
    keep_days: int = 30     # one point a minute kept this long; totals and days are kept


@dataclass(frozen=True)
class EcoConfig:
    # What the Boost and Eco buttons set besides charge now (LennyBo's sequence): a night
    # schedule at night_amps, from night_start to night_end; empty times = the tariff's
    # off-peak window, or 21:00-07:00 without a tariff. night_charge = false: no night charge.
    night_charge: bool = True
    night_amps: int = 16
    night_start: str = ""
    night_end: str = ""
