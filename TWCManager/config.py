"""The TOML configuration file (decisions §2): defaults, command-line overrides, validation.

Every mistake is an error at start, never silently ignored: an unknown key may be a typo in a
safety setting such as ``wiring_max_amps_all_twcs``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
ETC_CONFIG_PATH = Path("/etc/twcmanager/twcmanager.toml")
CHECKOUT_CONFIG_PATH = REPO_ROOT / "etc" / "twcmanager.toml"
ENV_VAR = "TWCMANAGER_CONFIG"
SETTINGS_FILE_NAME = "TWCManagerSettings.txt"


class ConfigError(Exception):
    """The configuration is unusable; the message says where, what is wrong and what is expected."""


def read_secret(path: str, key: str) -> str:
    """The first line of a secret file named by config key `key` (a token, a password)."""
    try:
        with open(path, encoding="utf-8") as handle:
            secret = handle.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc}") from None
    if not secret:
        raise ConfigError(f"{key}: {path} is empty")
    return secret


@dataclass(frozen=True)
class TwcConfig:
    serial_port: str = "/dev/ttyUSB0"
    baud: int = 9600
    wiring_max_amps_all_twcs: int = 16
    wiring_max_amps_per_twc: int = 16
    min_amps_per_twc: int = 6
    master_id: int = 0x7777
    master_sign: int = 0x77
    reopen_interval_s: float = 3.0
    slave_timeout_s: float = 26.0


@dataclass(frozen=True)
class GreenConfig:
    command: str = "solaredge -grid"
    # 2 s, not the seed's 30 s: a meter read every 1-2 s keeps ~98 % of what a clairvoyant
    # controller keeps, one read every 10 s far less (bench/solar_day.py). Affordable because
    # the solaredge command is kept running (`stream`).
    interval_s: float = 2.0
    # Keep the solaredge command running (`solaredge --stream`, one reading per request)
    # instead of starting a Python process per reading; other commands always run per reading.
    stream: bool = True
    # Whole local hours, as the original compared them with the clock's hour.
    start_hour: int = 6
    end_hour: int = 20
    volts: float = 230.0
    phases: int = 3
    amps_offset: float = 0.0
    stale_after_s: float = 120.0
    # Hysteresis (README "Green tracking", chosen with bench/solar_day.py). Start: the
    # surplus must feed the car's minimum this long (0: a start delay only lost sun).
    start_delay_s: float = 0.0
    # Stop: a shortfall is ridden through at the car's minimum until the first of: it has
    # cost ride_through_wh from the grid, the sun covers less than ride_through_min_share
    # of the minimum (a deep cloud), or it has lasted stop_delay_s.
    stop_delay_s: float = 180.0
    ride_through_wh: float = 20.0
    ride_through_min_share: float = 0.67
    # Raise: a surplus above the amps offered must last this long before the offer rises
    # (a raise below 16 A goes through the 16 A spike; a 2 s meter sees every ramp's noise).
    raise_delay_s: float = 6.0
    # "solar": never buy grid power to follow the sun; "cheapest": weigh a grid kWh at the
    # tariff's price against the sun kWh it keeps (needs [tariff]) — decisions.md §6.2;
    # empty: as before either existed (short clouds ridden through within ride_through_wh).
    mode: str = ""
    # "cheapest" only: a cloud may cost, riding through at the minimum, this share of what a
    # restart loses (the start hold's sun); 0 = stop at once. More = fewer starts, fewer euros.
    restart_budget_share: float = 0.3
    # A grid meter that is only in Home Assistant: its entity (instead of `command`), the URL
    # and a file holding a long-lived token; HA's sign is + = import unless export_positive.
    ha_grid_entity: str = ""
    ha_solar_entity: str = ""
    ha_export_positive: bool = False
    ha_url: str = "http://homeassistant.local:8123"
    ha_token_file: str = ""

    @property
    def watts_per_amp(self) -> float:
        return self.volts * self.phases


@dataclass(frozen=True)
class IpcConfig:
    path: str = ""  # empty = the TWCManager package directory, see ipc_path()
    # Permissions of the queue, octal. 0660: only the daemon's user and group may use it (an
    # open queue lets any local user fill it); "0666" for old PHP pages outside the group.
    mode: str = "0660"

    @property
    def mode_bits(self) -> int:
        return int(self.mode, 8)


@dataclass(frozen=True)
class SettingsConfig:
    file: str = ""  # empty = TWCManagerSettings.txt in the package directory, see settings_path()


@dataclass(frozen=True)
class WebConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    # HTTP basic auth over every page and API; off while username is empty.
    # password_hash: made by `python -m www --hash-password` (never the password itself).
    username: str = ""
    password_hash: str = ""
    # How long a page waits for the daemon before it says it is not responding.
    ipc_timeout_s: float = 2.0
    # Host names the pages answer to besides IP addresses, localhost and this machine's names
    # (DNS rebinding defence, www/security.py); ".example.net" includes subdomains, "*" = any.
    allowed_hosts: tuple[str, ...] = ()
    # A file with the bearer token /api/v1/ requires; empty = none (read by www/security.py).
    api_token_file: str = ""


@dataclass(frozen=True)
class SolarEdgeConfig:
    host: str = "127.0.0.1"
    port: int = 1502
    unit: int = 1
    timeout_s: float = 1.0


@dataclass(frozen=True)
class Pi30Config:
    # The PI30 battery inverter's port (/dev/ttyPI30, /dev/hidraw0); empty = no inverter.
    port: str = ""
    porttype: str = ""          # "serial" or "hidraw"; empty = by the device's name
    baud: int = 2400
    interval_s: float = 10.0
    timeout_s: float = 3.0      # per exchange, and how long to wait for another talker


# Round 2's sections (the battery inverter's tariff, plan, forecast, MQTT, history, Eco):
# config_sections.py, one place per concern.
from .config_sections import (BatteryConfig, EcoConfig, ForecastConfig,  # noqa: E402
                              HistoryConfig, MqttConfig, TariffConfig, TempoConfig)


@dataclass(frozen=True)
class LogConfig:
    file: str = ""  # empty = no log file
    level: str = "info"
    max_bytes: int = 1_000_000
    backups: int = 3

    @property
    def level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.level.upper()]


@dataclass(frozen=True)
class Config:
    twc: TwcConfig = field(default_factory=TwcConfig)
    green: GreenConfig = field(default_factory=GreenConfig)
    ipc: IpcConfig = field(default_factory=IpcConfig)
    settings: SettingsConfig = field(default_factory=SettingsConfig)
    web: WebConfig = field(default_factory=WebConfig)
    solaredge: SolarEdgeConfig = field(default_factory=SolarEdgeConfig)
    pi30: Pi30Config = field(default_factory=Pi30Config)
    tariff: TariffConfig = field(default_factory=TariffConfig)
    tempo: TempoConfig = field(default_factory=TempoConfig)
    battery: BatteryConfig = field(default_factory=BatteryConfig)
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    eco: EcoConfig = field(default_factory=EcoConfig)
    log: LogConfig = field(default_factory=LogConfig)
    # The file this came from (None = built-in defaults); not part of equality.
    source: Path | None = field(default=None, compare=False)


_SECTIONS: dict[str, type] = {
    "twc": TwcConfig, "green": GreenConfig, "ipc": IpcConfig, "settings": SettingsConfig,
    "web": WebConfig, "solaredge": SolarEdgeConfig, "pi30": Pi30Config, "tariff": TariffConfig,
    "tempo": TempoConfig, "battery": BatteryConfig, "forecast": ForecastConfig,
    "mqtt": MqttConfig, "history": HistoryConfig, "eco": EcoConfig, "log": LogConfig,
}
# Path-valued keys: relative values are taken relative to the config file (or the current
# directory for command-line overrides), so the meaning does not depend on where we were started.
_PATH_KEYS = {("ipc", "path"), ("settings", "file"), ("log", "file")}


def ipc_path(cfg: Config) -> Path:
    """The directory given to ftok(); the package directory by default, like the original."""
    return Path(cfg.ipc.path) if cfg.ipc.path else PACKAGE_DIR


def settings_path(cfg: Config) -> Path:
    """The settings file; TWCManagerSettings.txt next to the code by default, like the original."""
    return Path(cfg.settings.file) if cfg.settings.file else PACKAGE_DIR / SETTINGS_FILE_NAME


def history_path(cfg: Config) -> Path:
    """The history database; next to the settings file by default."""
    return Path(cfg.history.file) if cfg.history.file else settings_path(cfg).with_name(
        "history.sqlite")


def find_config_path(cli_path: str | os.PathLike | None, environ: Mapping[str, str],
                     etc_path: Path = ETC_CONFIG_PATH,
                     checkout_path: Path = CHECKOUT_CONFIG_PATH) -> Path | None:
    """--config, else $TWCMANAGER_CONFIG, else /etc/twcmanager/twcmanager.toml, else the checkout's
    etc/twcmanager.toml; None if none exists (built-in defaults). A path named explicitly (option or
    environment) that does not exist is an error rather than a silent fall-back."""
    if cli_path is not None and str(cli_path) != "":
        path = Path(cli_path).expanduser()
        if not path.exists():
            raise ConfigError(f"{path}: configuration file given with --config does not exist")
        return path
    env = environ.get(ENV_VAR, "")
    if env:
        path = Path(env).expanduser()
        if not path.exists():
            raise ConfigError(f"{path}: configuration file named by ${ENV_VAR} does not exist")
        return path
    for path in (Path(etc_path), Path(checkout_path)):
        if path.exists():
            return path
    return None


def load_config(path: str | os.PathLike | None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read the TOML file (None = defaults only), apply dotted-key overrides such as
    {"twc.serial_port": "/dev/pts/3"} (a None value means "not given"), validate everything.
    Raises ConfigError listing every problem found."""
    errors: list[str] = []
    values: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    where = "built-in defaults"
    if path is not None:
        path = Path(path)
        where = str(path)
        _read_file(path, values, errors)
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        _apply_override(dotted, value, values, errors)
    if errors:
        raise ConfigError(_join(where, errors))
    sections = {}
    for name, cls in _SECTIONS.items():
        try:
            sections[name] = cls(**values[name])
        except TypeError as e:  # cannot happen after the checks above; kept as a clear message
            errors.append(f"[{name}]: {e}")
    if errors:
        raise ConfigError(_join(where, errors))
    cfg = Config(**sections, source=path)
    errors.extend(check_ranges(cfg))
    if errors:
        raise ConfigError(_join(where, errors))
    return cfg


def find_and_load_config(cli_path: str | os.PathLike | None, overrides: Mapping[str, Any] | None = None,
                         environ: Mapping[str, str] | None = None) -> Config:
    """find_config_path + load_config, as every program's start-up does."""
    return load_config(find_config_path(cli_path, os.environ if environ is None else environ),
                       overrides)


def _join(where: str, errors: list[str]) -> str:
    if len(errors) == 1:
        return f"{where}: {errors[0]}"
    return f"{where}: {len(errors)} configuration errors:\n  " + "\n  ".join(errors)


def _read_file(path: Path, values: dict[str, dict[str, Any]], errors: list[str]) -> None:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        errors.append(f"TOML syntax error: {e}")
        return
    except UnicodeDecodeError as e:
        errors.append(f"not valid UTF-8 text ({e}); a TOML file must be UTF-8")
        return
    except OSError as e:
        errors.append(f"cannot read the configuration file: {e.strerror or e}")
        return
    base = path.resolve().parent
    for section, table in data.items():
        if section not in _SECTIONS:
            errors.append(f"unknown section [{section}]; valid sections are "
                          + ", ".join(f"[{s}]" for s in _SECTIONS))
            continue
        if not isinstance(table, dict):
            errors.append(f"{section} must be a table ([{section}]), got {_describe(table)}")
            continue
        for key, value in table.items():
            converted = _convert(section, key, value, errors, from_text=False)
            if converted is not _INVALID:
                if (section, key) in _PATH_KEYS and converted:
                    converted = str(base / Path(converted).expanduser())
                values[section][key] = converted


def _apply_override(dotted: str, value: Any, values: dict[str, dict[str, Any]],
                    errors: list[str]) -> None:
    section, _, key = str(dotted).partition(".")
    if section not in _SECTIONS or not key:
        errors.append(f"override {dotted!r}: unknown setting; expected section.key with a section "
                      "among " + ", ".join(_SECTIONS))
        return
    # Command-line values may arrive as text ("8081"); they are converted to the key's type.
    converted = _convert(section, key, value, errors, from_text=isinstance(value, str),
                         origin="override ")
    if converted is _INVALID:
        return
    if (section, key) in _PATH_KEYS and converted:
        converted = str(Path(converted).expanduser().absolute())
    values[section][key] = converted


_INVALID = object()


def _convert(section: str, key: str, value: Any, errors: list[str], from_text: bool,
             origin: str = "") -> Any:
    fields = {f.name: f for f in dataclasses.fields(_SECTIONS[section])}
    name = f"{origin}{section}.{key}"
    if key not in fields:
        errors.append(f"{name}: unknown key; valid keys in [{section}] are " + ", ".join(fields))
        return _INVALID
    kind = fields[key].type
    if kind == "str":
        if isinstance(value, str):
            return value
        errors.append(f"{name} = {value!r}: expected a string, got {_describe(value)}")
        return _INVALID
    if kind == "bool":
        if from_text and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if isinstance(value, bool):
            return value
        errors.append(f"{name} = {value!r}: expected true or false, got {_describe(value)}")
        return _INVALID
    if from_text:
        try:
            value = int(value.strip(), 0) if kind == "int" else float(value)
        except ValueError:
            pass  # falls through to the type message below
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        errors.append(f"{name} = {value!r}: expected a whole number, got {_describe(value)}")
        return _INVALID
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                errors.append(f"{name} = {value!r}: expected a finite number")
                return _INVALID
            return float(value)
        errors.append(f"{name} = {value!r}: expected a number, got {_describe(value)}")
        return _INVALID
    if kind == "tuple[str, ...]":
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        errors.append(f"{name} = {value!r}: expected a list of strings such as "
                      f'["garage.example.net"], got {_describe(value)}')
        return _INVALID
    raise AssertionError(f"no converter for {kind}")  # a new field type needs a branch here


def _describe(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)


from .config_checks import check_ranges  # noqa: E402  (it needs the schema above, for its types)
