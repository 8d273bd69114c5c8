"""The configuration's range checks: what a well-formed TOML file may still get wrong (a baud
rate termios cannot take, a minimum above the wiring, a port out of range…), each reported
with its key. `config.load_config` runs them; this module only reads the schema."""
from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config

# No Gen2 Wall Connector is rated above 80 A; 5 A is the lowest offer a car accepts (protocol 1).
GEN2_MAX_AMPS = 80
MIN_OFFER_AMPS = 5
LEVELS = ("debug", "info", "warning", "error", "critical")


def is_ip_literal(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# What USB RS-485 adapters can do (FTDI: 3 Mbaud); the TWC bus runs at 9600.
BAUD_MIN, BAUD_MAX = 300, 4_000_000


def check_ranges(cfg: Config) -> list[str]:
    """Every value out of its range, each as one message naming its key."""
    e: list[str] = []
    t, g = cfg.twc, cfg.green

    if not re.fullmatch(r"0?[0-7]{3}", cfg.ipc.mode) or int(cfg.ipc.mode, 8) & 0o600 != 0o600:
        e.append(f"ipc.mode = {cfg.ipc.mode!r}: expected octal permissions that let the owner "
                 'read and write, such as "0660" or "0666"')
    if not t.serial_port:
        e.append("twc.serial_port is empty; expected a device such as /dev/ttyUSB0")
    if not BAUD_MIN <= t.baud <= BAUD_MAX:
        # termios takes a C int: 2147483648 would kill the serial reader, not the start.
        e.append(f"twc.baud = {t.baud}: expected a baud rate {BAUD_MIN}..{BAUD_MAX} "
                 "(TWCs use 9600)")
    for key in ("wiring_max_amps_all_twcs", "wiring_max_amps_per_twc", "min_amps_per_twc"):
        amps = getattr(t, key)
        if amps <= 0:
            e.append(f"twc.{key} = {amps}: expected a positive number of amps")
    if t.wiring_max_amps_per_twc > GEN2_MAX_AMPS:
        e.append(f"twc.wiring_max_amps_per_twc = {t.wiring_max_amps_per_twc}: no Gen2 Wall "
                 f"Connector is rated above {GEN2_MAX_AMPS} A; expected 1..{GEN2_MAX_AMPS}")
    if 0 < t.min_amps_per_twc < MIN_OFFER_AMPS:
        e.append(f"twc.min_amps_per_twc = {t.min_amps_per_twc}: cars do not charge below "
                 f"{MIN_OFFER_AMPS} A; expected at least {MIN_OFFER_AMPS}")
    # decisions §4.8: a minimum the wiring can never give is refused at start.
    for key in ("wiring_max_amps_per_twc", "wiring_max_amps_all_twcs"):
        limit = getattr(t, key)
        if t.min_amps_per_twc > limit > 0:
            e.append(f"twc.min_amps_per_twc ({t.min_amps_per_twc} A) is above twc.{key} "
                     f"({limit} A): a car could never be offered its minimum; lower "
                     "min_amps_per_twc or fix the wiring limits")
    if not 0x0001 <= t.master_id <= 0xFFFE:
        e.append(f"twc.master_id = {t.master_id:#x}: expected a TWC id 0x0001..0xFFFE "
                 "(default 0x7777)")
    if not 0 <= t.master_sign <= 0xFF:
        e.append(f"twc.master_sign = {t.master_sign}: expected one byte 0..255 (default 0x77)")
    for key in ("reopen_interval_s", "slave_timeout_s"):
        if getattr(t, key) <= 0:
            e.append(f"twc.{key} = {getattr(t, key)}: expected a positive number of seconds")

    if not g.command.strip():
        e.append("green.command is empty; expected the command that prints the grid export in W "
                 "(default \"solaredge -grid\")")
    for key in ("interval_s", "stale_after_s"):
        if getattr(g, key) <= 0:
            e.append(f"green.{key} = {getattr(g, key)}: expected a positive number of seconds")
    if 0 < g.stale_after_s < g.interval_s:
        e.append(f"green.stale_after_s ({g.stale_after_s} s) is shorter than green.interval_s "
                 f"({g.interval_s} s): every reading would expire before the next one; expected "
                 "stale_after_s >= interval_s")
    for key in ("start_delay_s", "stop_delay_s", "ride_through_wh", "raise_delay_s"):
        if getattr(g, key) < 0:
            e.append(f"green.{key} = {getattr(g, key)}: expected 0 or more (0 = none)")
    if not 0 <= g.ride_through_min_share <= 1:
        e.append(f"green.ride_through_min_share = {g.ride_through_min_share}: expected a share "
                 "of the car's minimum from 0 to 1 (default 0.67)")
    hours_ok = True
    for key in ("start_hour", "end_hour"):
        hour = getattr(g, key)
        if not 0 <= hour <= 24:
            hours_ok = False
            e.append(f"green.{key} = {hour}: expected an hour of the day 0..24")
    if hours_ok and g.start_hour >= g.end_hour:
        e.append(f"green.start_hour ({g.start_hour}) is not before green.end_hour ({g.end_hour}); "
                 "expected start_hour < end_hour (the green window does not cross midnight)")
    if g.volts <= 0:
        e.append(f"green.volts = {g.volts}: expected a positive voltage (230 in Europe)")
    if g.phases not in (1, 3):
        e.append(f"green.phases = {g.phases}: expected 1 or 3")

    for section, port in (("web", cfg.web.port), ("solaredge", cfg.solaredge.port)):
        if not 1 <= port <= 65535:
            e.append(f"{section}.port = {port}: expected a TCP port 1..65535")
    if not cfg.web.host:
        e.append("web.host is empty; expected an address such as 0.0.0.0 or 127.0.0.1")
    if bool(cfg.web.username) != bool(cfg.web.password_hash):
        e.append("web.username and web.password_hash go together: set both to turn on the "
                 "password, or neither")
    if not 0 < cfg.web.ipc_timeout_s <= 30:
        e.append(f"web.ipc_timeout_s = {cfg.web.ipc_timeout_s:g} is outside 0 < s <= 30")
    for host in cfg.web.allowed_hosts:
        # A scheme, port or path would never match a Host header: say so now, not with a 400.
        name = "any" if host == "*" else host.removeprefix("*.").removeprefix(".")
        if not name.strip(".") or any(c in name for c in "*/@ \t") \
                or (":" in name and not is_ip_literal(name)):
            e.append(f"web.allowed_hosts: {host!r} is not a host name; expected a name such as "
                     '"garage.example.net", ".example.net" (with its subdomains) or "*" (any); '
                     "no scheme, port or path")
    if not cfg.solaredge.host:
        e.append("solaredge.host is empty; expected the inverter's address")
    if not 1 <= cfg.solaredge.unit <= 247:
        e.append(f"solaredge.unit = {cfg.solaredge.unit}: expected a Modbus unit id 1..247")
    if cfg.solaredge.timeout_s <= 0:
        e.append(f"solaredge.timeout_s = {cfg.solaredge.timeout_s}: expected a positive number "
                 "of seconds")

    p = cfg.pi30
    if p.porttype not in ("", "serial", "hidraw"):
        e.append(f"pi30.porttype = {p.porttype!r}: expected \"serial\", \"hidraw\" or empty")
    if not BAUD_MIN <= p.baud <= BAUD_MAX:
        e.append(f"pi30.baud = {p.baud}: expected a baud rate {BAUD_MIN}..{BAUD_MAX} "
                 "(PI30 inverters use 2400)")
    for key in ("interval_s", "timeout_s"):
        if not getattr(p, key) > 0:
            e.append(f"pi30.{key} = {getattr(p, key)}: expected a positive number of seconds")

    e += _tariff_problems(cfg)
    if cfg.log.level.lower() not in LEVELS:
        e.append(f"log.level = {cfg.log.level!r}: not a logging level; expected one of "
                 + ", ".join(LEVELS))
    if cfg.log.max_bytes < 0:
        e.append(f"log.max_bytes = {cfg.log.max_bytes}: expected 0 (no rotation) or more bytes")
    if cfg.log.backups < 0:
        e.append(f"log.backups = {cfg.log.backups}: expected 0 or more")
    return e


HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
PRICE_MAX_EUR_KWH = 10.0     # ten times a red peak kWh: anything above is a unit mistake


def minutes_of(text: str) -> int:
    """"HH:MM" (checked by check_ranges) as minutes after midnight."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _tariff_problems(cfg: Config) -> list[str]:
    e: list[str] = []
    t, tempo = cfg.tariff, cfg.tempo
    if cfg.green.mode not in ("", "solar", "cheapest"):
        e.append(f'green.mode = {cfg.green.mode!r}: expected "solar", "cheapest" or empty')
    if cfg.green.ha_grid_entity and not cfg.green.ha_token_file:
        e.append("green.ha_grid_entity needs green.ha_token_file (a long-lived access token "
                 "made on your Home Assistant profile page)")
    if not 0 <= cfg.green.restart_budget_share <= 10:
        e.append(f"green.restart_budget_share = {cfg.green.restart_budget_share}: expected "
                 "0 (stop at once) .. 10")
    if t.kind not in ("none", "tempo"):
        e.append(f'tariff.kind = {t.kind!r}: expected "none" or "tempo"')
    for key in ("offpeak_start", "offpeak_end", "day_start"):
        if not HHMM.fullmatch(getattr(t, key)):
            e.append(f"tariff.{key} = {getattr(t, key)!r}: expected a time \"HH:MM\" "
                     "(Paris local time, 24-hour)")
    if t.offpeak_start == t.offpeak_end:
        e.append("tariff.offpeak_start and offpeak_end are equal: the off-peak window is empty")
    for key in ("blue_peak_eur_kwh", "blue_offpeak_eur_kwh", "white_peak_eur_kwh",
                "white_offpeak_eur_kwh", "red_peak_eur_kwh", "red_offpeak_eur_kwh",
                "export_eur_kwh"):
        if not 0 <= getattr(t, key) <= PRICE_MAX_EUR_KWH:
            e.append(f"tariff.{key} = {getattr(t, key)}: expected EUR per kWh, "
                     f"0..{PRICE_MAX_EUR_KWH:g} (e.g. 0.1654)")
    if tempo.source not in ("rte", "manual"):
        e.append(f'tempo.source = {tempo.source!r}: expected "rte" or "manual"')
    if t.kind == "tempo" and tempo.source == "rte":
        if not tempo.client_id or not tempo.client_secret_file:
            e.append("tempo.source = \"rte\" needs tempo.client_id and tempo.client_secret_file "
                     "(an application on RTE's data portal)")
        if not re.match(r"https?://[^/\s]+", tempo.rte_url):
            e.append(f"tempo.rte_url = {tempo.rte_url!r}: expected a base URL such as "
                     "https://digital.iservices.rte-france.com")
    for key in ("poll_interval_s", "timeout_s"):
        if not getattr(tempo, key) > 0:
            e.append(f"tempo.{key} = {getattr(tempo, key)}: expected a positive number of seconds")
    b = cfg.battery
    if not 0 < b.capacity_kwh <= 1000:
        e.append(f"battery.capacity_kwh = {b.capacity_kwh}: expected 0 < kWh <= 1000")
    if not 0 <= b.min_soc_pct < 100:
        e.append(f"battery.min_soc_pct = {b.min_soc_pct}: expected 0 <= % < 100")
    if not 0 <= b.peak_load_kwh <= 1000:
        e.append(f"battery.peak_load_kwh = {b.peak_load_kwh}: expected 0..1000 kWh")
    if not 0 <= b.forecast_share <= 1:
        e.append(f"battery.forecast_share = {b.forecast_share}: expected a share 0..1")
    if b.normal_output_priority not in ("utility", "solar", "sbu"):
        e.append(f"battery.normal_output_priority = {b.normal_output_priority!r}: expected "
                 '"utility", "solar" or "sbu"')
    f = cfg.forecast
    if f.source not in ("none", "homeassistant", "forecast_solar"):
        e.append(f'forecast.source = {f.source!r}: expected "none", "homeassistant" or '
                 '"forecast_solar"')
    if f.source == "homeassistant" and not f.ha_token_file:
        e.append("forecast.source = \"homeassistant\" needs forecast.ha_token_file (a "
                 "long-lived access token made on your Home Assistant profile page)")
    if f.source == "forecast_solar" and not (-90 <= f.latitude <= 90 and -180 <= f.longitude
                                             <= 180 and f.kwp > 0):
        e.append("forecast.source = \"forecast_solar\" needs forecast.latitude (-90..90), "
                 "longitude (-180..180) and kwp (> 0)")
    for key in ("interval_s", "timeout_s"):
        if not getattr(f, key) > 0:
            e.append(f"forecast.{key} = {getattr(f, key)}: expected a positive number of seconds")
    eco = cfg.eco
    if not 6 <= eco.night_amps <= 80:
        e.append(f"eco.night_amps = {eco.night_amps}: expected 6..80 A")
    for key in ("night_start", "night_end"):
        value = getattr(eco, key)
        if value and not HHMM.fullmatch(value):
            e.append(f"eco.{key} = {value!r}: expected \"HH:MM\" or empty (the tariff's off-peak "
                     "window)")
    if bool(eco.night_start) != bool(eco.night_end):
        e.append("eco.night_start and eco.night_end go together: set both, or neither")
    if not 1 <= cfg.history.keep_days <= 3650:
        e.append(f"history.keep_days = {cfg.history.keep_days}: expected 1..3650 days")
    q = cfg.mqtt
    if not 1 <= q.port <= 65535:
        e.append(f"mqtt.port = {q.port}: expected a TCP port 1..65535")
    for key in ("prefix", "discovery_prefix"):
        value = getattr(q, key)
        if not value or any(c in value for c in "#+ ") or value.strip("/") != value:
            e.append(f"mqtt.{key} = {value!r}: expected a topic prefix such as \"twcmanager\" "
                     "(no wildcards, spaces or leading/trailing slash)")
    if not q.interval_s > 0:
        e.append(f"mqtt.interval_s = {q.interval_s}: expected a positive number of seconds")
    if b.automate and (t.kind != "tempo" or not cfg.pi30.port):
        e.append('battery.automate = true needs a PI30 ([pi30] port) and [tariff] kind = "tempo"')
    return e
