"""The TOML configuration: defaults, overrides, lookup order, and every refusal (decisions §2, §4.8)."""

import dataclasses
import tomllib
from pathlib import Path

import pytest

from TWCManager import config as cm
from TWCManager.config import (Config, ConfigError, find_and_load_config, find_config_path,
                               ipc_path, load_config, settings_path)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = REPO_ROOT / "etc" / "twcmanager.toml"


def write(tmp_path: Path, text: str, name: str = "twcmanager.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    message = str(info.value)
    assert str(path) in message  # every message names the file
    return message


# --- defaults ---------------------------------------------------------------------------------

def test_defaults():
    cfg = load_config(None, {})
    assert cfg == Config()
    t, g = cfg.twc, cfg.green
    assert (t.serial_port, t.baud, t.wiring_max_amps_all_twcs, t.wiring_max_amps_per_twc,
            t.min_amps_per_twc) == ("/dev/ttyUSB0", 9600, 16, 16, 6)
    assert (t.master_id, t.master_sign, t.reopen_interval_s, t.slave_timeout_s) == (0x7777, 0x77, 3.0, 26.0)
    assert (g.command, g.interval_s, g.start_hour, g.end_hour, g.volts, g.phases, g.amps_offset,
            g.stale_after_s, g.stream) == ("solaredge -grid", 2, 6, 20, 230, 3, 0.0, 120, True)
    # The fail-safe must not trip between two readings, nor on one late answer.
    assert g.stale_after_s >= 10 * g.interval_s
    assert g.watts_per_amp == 690
    assert cfg.ipc.path == "" and cfg.settings.file == ""
    assert (cfg.web.host, cfg.web.port) == ("0.0.0.0", 8080)
    s = cfg.solaredge
    assert (s.host, s.port, s.unit, s.timeout_s) == ("127.0.0.1", 1502, 1, 1.0)
    assert (cfg.log.file, cfg.log.level, cfg.log.max_bytes, cfg.log.backups) == ("", "info", 1_000_000, 3)
    assert cfg.log.level_number == 20
    assert cfg.source is None


def test_default_file_loads_and_equals_the_defaults():
    cfg = load_config(DEFAULT_FILE, {})
    assert cfg == Config()
    assert cfg.source == DEFAULT_FILE


def test_default_file_has_every_key_with_a_comment():
    text = DEFAULT_FILE.read_text()
    data = tomllib.loads(text)
    lines = text.splitlines()
    for section in dataclasses.fields(Config):
        if section.name == "source":
            continue
        expected = [f.name for f in dataclasses.fields(getattr(Config(), section.name))]
        assert list(data[section.name]) == expected
    # Each key line follows a comment line or another key line of the same commented group.
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            j = i - 1
            while not lines[j].startswith("#"):
                assert "=" in lines[j], f"key without a comment: {line}"
                j -= 1


def test_default_ipc_and_settings_paths_are_the_package_directory():
    package = REPO_ROOT / "TWCManager"
    assert ipc_path(Config()) == package
    assert settings_path(Config()) == package / "TWCManagerSettings.txt"


# --- overrides --------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, attr", [
    ("twc.serial_port", "/dev/pts/3", ("twc", "serial_port")),
    ("green.command", "echo 1234", ("green", "command")),
    ("web.host", "127.0.0.1", ("web", "host")),
    ("web.port", 8081, ("web", "port")),
    ("twc.baud", 19200, ("twc", "baud")),
    ("solaredge.host", "192.168.1.9", ("solaredge", "host")),
    ("solaredge.port", 502, ("solaredge", "port")),
    ("log.level", "debug", ("log", "level")),
])
def test_each_override(key, value, attr):
    cfg = load_config(None, {key: value})
    assert getattr(getattr(cfg, attr[0]), attr[1]) == value


def test_path_overrides(tmp_path):
    cfg = load_config(None, {"ipc.path": str(tmp_path / "ipc"), "settings.file": str(tmp_path / "s.txt")})
    assert ipc_path(cfg) == tmp_path / "ipc"
    assert settings_path(cfg) == tmp_path / "s.txt"


def test_relative_path_override_is_taken_from_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, {"settings.file": "s.txt"})
    assert settings_path(cfg) == tmp_path / "s.txt"


def test_relative_path_in_file_is_taken_from_the_file_directory(tmp_path):
    path = write(tmp_path, '[settings]\nfile = "data/s.txt"\n[ipc]\npath = "."\n')
    cfg = load_config(path, {})
    assert settings_path(cfg) == tmp_path / "data" / "s.txt"
    assert ipc_path(cfg) == tmp_path


def test_override_beats_file(tmp_path):
    path = write(tmp_path, '[twc]\nserial_port = "/dev/ttyAMA0"\n[web]\nport = 9000\n')
    cfg = load_config(path, {"twc.serial_port": "/dev/pts/7"})
    assert cfg.twc.serial_port == "/dev/pts/7"
    assert cfg.web.port == 9000


def test_none_override_means_not_given():
    assert load_config(None, {"web.port": None, "twc.serial_port": None}) == Config()


def test_text_overrides_are_converted():
    cfg = load_config(None, {"web.port": "8081", "twc.master_id": "0x1234", "green.amps_offset": "-2.5"})
    assert (cfg.web.port, cfg.twc.master_id, cfg.green.amps_offset) == (8081, 0x1234, -2.5)
    assert load_config(None, {"green.stream": "false"}).green.stream is False
    assert load_config(None, {"green.stream": False}).green.stream is False


def test_bad_overrides_are_refused():
    with pytest.raises(ConfigError, match=r"override web.port = 'abc': expected a whole number"):
        load_config(None, {"web.port": "abc"})
    with pytest.raises(ConfigError, match=r"override 'nosuch.key': unknown setting"):
        load_config(None, {"nosuch.key": 1})
    with pytest.raises(ConfigError, match=r"override twc.serial_prot: unknown key; valid keys .*serial_port"):
        load_config(None, {"twc.serial_prot": "/dev/x"})
    with pytest.raises(ConfigError, match=r"twc.min_amps_per_twc \(20 A\) is above"):
        load_config(None, {"twc.min_amps_per_twc": 20})


# --- errors in the file -----------------------------------------------------------------------

def test_toml_syntax_error(tmp_path):
    message = error_of(tmp_path, "[twc]\nbaud = = 9600\n")
    assert "TOML syntax error" in message and "line 2" in message


def test_not_utf8(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b'[twc]\nserial_port = "\xff"\n')
    with pytest.raises(ConfigError, match="c.toml: not valid UTF-8 text .*a TOML file must be UTF-8"):
        load_config(path, {})


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load_config(tmp_path, {})  # a directory


@pytest.mark.parametrize("text, fragment", [
    ('[twc]\nbaud = "9600"\n', "twc.baud = '9600': expected a whole number, got a string"),
    ("[twc]\nbaud = true\n", "twc.baud = True: expected a whole number, got a boolean"),
    ("[twc]\nmin_amps_per_twc = 6.5\n", "twc.min_amps_per_twc = 6.5: expected a whole number, got a float"),
    ("[web]\nport = 80.0\n", "web.port = 80.0: expected a whole number, got a float"),
    ("[twc]\nserial_port = 3\n", "twc.serial_port = 3: expected a string, got an integer"),
    ("[green]\nstart_hour = 6.5\n", "green.start_hour = 6.5: expected a whole number, got a float"),
    ("[green]\nvolts = false\n", "green.volts = False: expected a number, got a boolean"),
    ('[green]\nvolts = "230"\n', "green.volts = '230': expected a number, got a string"),
    ("[green]\nvolts = nan\n", "green.volts = nan: expected a finite number"),
    ("[green]\nstream = 1\n", "green.stream = 1: expected true or false, got an integer"),
    ('[green]\nstream = "yes"\n', "green.stream = 'yes': expected true or false, got a string"),
    ("[log]\nlevel = [1]\n", "log.level = [1]: expected a string, got an array"),
    ("twc = 5\n", "twc must be a table ([twc]), got an integer"),
])
def test_wrong_types(tmp_path, text, fragment):
    assert fragment in error_of(tmp_path, text)


def test_int_where_float_expected_is_fine(tmp_path):
    cfg = load_config(write(tmp_path, "[twc]\nreopen_interval_s = 2\n[green]\nvolts = 240\namps_offset = -1\n"), {})
    assert cfg.twc.reopen_interval_s == 2.0 and isinstance(cfg.twc.reopen_interval_s, float)
    assert cfg.green.volts == 240.0 and cfg.green.amps_offset == -1.0


def test_unknown_section(tmp_path):
    message = error_of(tmp_path, "[tcw]\nbaud = 9600\n")
    assert "unknown section [tcw]" in message and "[twc]" in message and "[green]" in message


def test_unknown_key_names_the_valid_keys(tmp_path):
    message = error_of(tmp_path, "[twc]\nwiring_max_amp_all_twcs = 40\n")
    assert "twc.wiring_max_amp_all_twcs: unknown key" in message
    assert "wiring_max_amps_all_twcs" in message and "min_amps_per_twc" in message


def test_nested_table_is_an_unknown_key(tmp_path):
    assert "twc.extra: unknown key" in error_of(tmp_path, "[twc.extra]\na = 1\n")


def test_all_errors_are_listed_at_once(tmp_path):
    message = error_of(tmp_path, "[twc]\nbaud = 'x'\nfoo = 1\n[bar]\n")
    assert "3 configuration errors" in message
    assert "twc.baud" in message and "twc.foo" in message and "[bar]" in message


@pytest.mark.parametrize("text, fragment", [
    ("[twc]\nwiring_max_amps_all_twcs = 0\n", "twc.wiring_max_amps_all_twcs = 0: expected a positive number of amps"),
    ("[twc]\nwiring_max_amps_per_twc = -16\n", "twc.wiring_max_amps_per_twc = -16: expected a positive number of amps"),
    ("[twc]\nmin_amps_per_twc = 0\n", "twc.min_amps_per_twc = 0: expected a positive number of amps"),
    ("[twc]\nmin_amps_per_twc = 4\n", "twc.min_amps_per_twc = 4: cars do not charge below 5 A; expected at least 5"),
    ("[twc]\nwiring_max_amps_per_twc = 81\nwiring_max_amps_all_twcs = 100\n",
     "twc.wiring_max_amps_per_twc = 81: no Gen2 Wall Connector is rated above 80 A"),
    ("[twc]\nbaud = 0\n", "twc.baud = 0: expected a baud rate 300..4000000"),
    ("[twc]\nbaud = 2147483648\n", "twc.baud = 2147483648: expected a baud rate 300..4000000"),
    ("[twc]\nserial_port = ''\n", "twc.serial_port is empty"),
    ("[twc]\nmaster_id = 0\n", "twc.master_id = 0x0: expected a TWC id 0x0001..0xFFFE"),
    ("[twc]\nmaster_id = 0x10000\n", "twc.master_id = 0x10000: expected a TWC id"),
    ("[twc]\nmaster_sign = 256\n", "twc.master_sign = 256: expected one byte 0..255"),
    ("[twc]\nslave_timeout_s = 0\n", "twc.slave_timeout_s = 0.0: expected a positive number of seconds"),
    ("[twc]\nreopen_interval_s = -1\n", "twc.reopen_interval_s = -1.0: expected a positive number of seconds"),
    ("[green]\nstart_hour = -1\n", "green.start_hour = -1: expected an hour of the day 0..24"),
    ("[green]\nend_hour = 25\n", "green.end_hour = 25: expected an hour of the day 0..24"),
    ("[green]\nstart_hour = 20\nend_hour = 6\n", "green.start_hour (20) is not before green.end_hour (6)"),
    ("[green]\nstart_hour = 8\nend_hour = 8\n", "green.start_hour (8) is not before green.end_hour (8)"),
    ("[green]\nvolts = 0\n", "green.volts = 0.0: expected a positive voltage"),
    ("[green]\nvolts = -230\n", "green.volts = -230.0: expected a positive voltage"),
    ("[green]\nphases = 0\n", "green.phases = 0: expected 1 or 3"),
    ("[green]\nphases = 2\n", "green.phases = 2: expected 1 or 3"),
    ("[green]\ninterval_s = 0\n", "green.interval_s = 0.0: expected a positive number of seconds"),
    ("[green]\ninterval_s = 10\nstale_after_s = 5\n",
     "green.stale_after_s (5.0 s) is shorter than green.interval_s (10.0 s)"),
    ("[green]\ncommand = '  '\n", "green.command is empty"),
    ("[green]\nstop_delay_s = -1\n", "green.stop_delay_s = -1.0: expected 0 or more"),
    ("[green]\nride_through_wh = -5\n", "green.ride_through_wh = -5.0: expected 0 or more"),
    ("[green]\nride_through_min_share = 1.5\n",
     "green.ride_through_min_share = 1.5: expected a share of the car's minimum from 0 to 1"),
    ("[web]\nport = 0\n", "web.port = 0: expected a TCP port 1..65535"),
    ("[web]\nport = 65536\n", "web.port = 65536: expected a TCP port 1..65535"),
    ("[web]\nhost = ''\n", "web.host is empty"),
    ("[solaredge]\nport = -1\n", "solaredge.port = -1: expected a TCP port"),
    ("[solaredge]\nunit = 0\n", "solaredge.unit = 0: expected a Modbus unit id 1..247"),
    ("[solaredge]\ntimeout_s = 0\n", "solaredge.timeout_s = 0.0: expected a positive number of seconds"),
    ("[log]\nlevel = 'loud'\n", "log.level = 'loud': not a logging level; expected one of debug, info"),
    ("[log]\nmax_bytes = -1\n", "log.max_bytes = -1"),
    ("[log]\nbackups = -1\n", "log.backups = -1"),
])
def test_out_of_range(tmp_path, text, fragment):
    assert fragment in error_of(tmp_path, text)


def test_green_window_may_span_the_whole_day(tmp_path):
    cfg = load_config(write(tmp_path, "[green]\nstart_hour = 0\nend_hour = 24\n"), {})
    assert (cfg.green.start_hour, cfg.green.end_hour) == (0, 24)


def test_single_phase(tmp_path):
    cfg = load_config(write(tmp_path, "[green]\nphases = 1\nvolts = 240\n"), {})
    assert cfg.green.watts_per_amp == 240


def test_log_level_names_are_case_insensitive(tmp_path):
    cfg = load_config(write(tmp_path, "[log]\nlevel = 'WARNING'\n"), {})
    assert cfg.log.level_number == 30


# --- decisions §4.8: a minimum the wiring can never give is refused ----------------------------

def test_min_above_per_twc_wiring_is_refused(tmp_path):
    message = error_of(tmp_path, "[twc]\nmin_amps_per_twc = 20\nwiring_max_amps_per_twc = 16\n"
                                 "wiring_max_amps_all_twcs = 40\n")
    assert ("twc.min_amps_per_twc (20 A) is above twc.wiring_max_amps_per_twc (16 A): a car could "
            "never be offered its minimum; lower min_amps_per_twc or fix the wiring limits") in message
    assert "wiring_max_amps_all_twcs (" not in message


def test_min_above_total_wiring_is_refused(tmp_path):
    message = error_of(tmp_path, "[twc]\nmin_amps_per_twc = 12\nwiring_max_amps_per_twc = 32\n"
                                 "wiring_max_amps_all_twcs = 10\n")
    assert ("twc.min_amps_per_twc (12 A) is above twc.wiring_max_amps_all_twcs (10 A): a car could "
            "never be offered its minimum") in message


def test_min_equal_to_wiring_is_allowed(tmp_path):
    cfg = load_config(write(tmp_path, "[twc]\nmin_amps_per_twc = 16\n"), {})
    assert cfg.twc.min_amps_per_twc == 16


def test_us_80a_unit_is_allowed(tmp_path):
    cfg = load_config(write(tmp_path, "[twc]\nwiring_max_amps_per_twc = 80\nwiring_max_amps_all_twcs = 80\n"
                                      "min_amps_per_twc = 12\n"), {})
    assert cfg.twc.wiring_max_amps_per_twc == 80


def test_partial_file_keeps_other_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "[twc]\nserial_port = '/dev/ttyS0'\n"), {})
    assert cfg.twc.serial_port == "/dev/ttyS0"
    assert cfg.twc.baud == 9600 and cfg.green == Config().green


def test_empty_file_is_the_defaults(tmp_path):
    assert load_config(write(tmp_path, ""), {}) == Config()


# --- lookup order -----------------------------------------------------------------------------

@pytest.fixture
def four(tmp_path):
    paths = {name: tmp_path / f"{name}.toml" for name in ("cli", "env", "etc", "checkout")}
    for p in paths.values():
        p.write_text("")
    return paths


def find(cli, environ, paths):
    return find_config_path(cli, environ, etc_path=paths["etc"], checkout_path=paths["checkout"])


def test_cli_path_first(four):
    assert find(str(four["cli"]), {"TWCMANAGER_CONFIG": str(four["env"])}, four) == four["cli"]


def test_environment_second(four):
    assert find(None, {"TWCMANAGER_CONFIG": str(four["env"])}, four) == four["env"]


def test_etc_third(four):
    assert find(None, {}, four) == four["etc"]


def test_checkout_fourth(four):
    four["etc"].unlink()
    assert find(None, {"OTHER": "x"}, four) == four["checkout"]


def test_none_when_nothing_exists(four):
    four["etc"].unlink()
    four["checkout"].unlink()
    assert find(None, {}, four) is None


def test_empty_environment_variable_is_unset(four):
    assert find(None, {"TWCMANAGER_CONFIG": ""}, four) == four["etc"]


def test_missing_explicit_cli_path_is_an_error(four, tmp_path):
    with pytest.raises(ConfigError, match=r"nope.toml: configuration file given with --config does not exist"):
        find(str(tmp_path / "nope.toml"), {"TWCMANAGER_CONFIG": str(four["env"])}, four)


def test_missing_environment_path_is_an_error(four, tmp_path):
    with pytest.raises(ConfigError, match=r"nope.toml: configuration file named by \$TWCMANAGER_CONFIG does not exist"):
        find(None, {"TWCMANAGER_CONFIG": str(tmp_path / "nope.toml")}, four)


def test_default_lookup_paths():
    assert cm.ETC_CONFIG_PATH == Path("/etc/twcmanager/twcmanager.toml")
    assert cm.CHECKOUT_CONFIG_PATH == DEFAULT_FILE


def test_find_and_load(tmp_path):
    path = write(tmp_path, "[web]\nport = 8099\n")
    cfg = find_and_load_config(None, {"web.host": "127.0.0.1"}, environ={"TWCMANAGER_CONFIG": str(path)})
    assert (cfg.web.port, cfg.web.host, cfg.source) == (8099, "127.0.0.1", path)


# --- web.allowed_hosts (www/security.py's Host check) -------------------------------------------

def test_allowed_hosts_is_a_list_of_names(tmp_path):
    path = write(tmp_path, '[web]\nallowed_hosts = ["garage.example.net", ".home.example", "*", "::1"]\n')
    assert load_config(path, {}).web.allowed_hosts == ("garage.example.net", ".home.example", "*", "::1")
    assert Config().web.allowed_hosts == ()


@pytest.mark.parametrize("value, fragment", [
    ('"garage.example.net"', "web.allowed_hosts = 'garage.example.net': expected a list of strings"),
    ('["garage", 1]', "web.allowed_hosts = ['garage', 1]: expected a list of strings"),
    ('[""]', "web.allowed_hosts: '' is not a host name"),
    ('["."]', "web.allowed_hosts: '.' is not a host name"),
    ('["http://garage.example.net"]', "web.allowed_hosts: 'http://garage.example.net' is not a host name"),
    ('["garage.example.net:8080"]', "web.allowed_hosts: 'garage.example.net:8080' is not a host name"),
    ('["garage example"]', "web.allowed_hosts: 'garage example' is not a host name"),
    ('["ga*rage"]', "web.allowed_hosts: 'ga*rage' is not a host name"),
])
def test_bad_allowed_hosts_are_refused(tmp_path, value, fragment):
    assert fragment in error_of(tmp_path, f"[web]\nallowed_hosts = {value}\n")


@pytest.mark.parametrize("text, fragment", [
    ('[green]\nmode = "cheap"\n', "green.mode = 'cheap': expected \"solar\", \"cheapest\" or empty"),
    ("[green]\nrestart_budget_share = -1\n", "green.restart_budget_share = -1.0: expected 0"),
    ('[tariff]\nkind = "hphc"\n', "tariff.kind = 'hphc': expected \"none\" or \"tempo\""),
    ('[tariff]\noffpeak_start = "22h"\n', "tariff.offpeak_start = '22h': expected a time \"HH:MM\""),
    ('[tariff]\nday_start = "24:00"\n', "tariff.day_start = '24:00': expected a time"),
    ('[tariff]\noffpeak_start = "06:00"\noffpeak_end = "06:00"\n', "off-peak window is empty"),
    ("[tariff]\nred_peak_eur_kwh = 729.5\n", "tariff.red_peak_eur_kwh = 729.5: expected EUR per kWh"),
    ("[tariff]\nexport_eur_kwh = -0.1\n", "tariff.export_eur_kwh = -0.1: expected EUR per kWh"),
    ('[tempo]\nsource = "linky"\n', "tempo.source = 'linky': expected \"rte\" or \"manual\""),
    ('[tariff]\nkind = "tempo"\n[tempo]\nsource = "rte"\n', "needs tempo.client_id and"),
    ('[tariff]\nkind = "tempo"\n[tempo]\nsource = "rte"\nclient_id = "a"\n'
     'client_secret_file = "/s"\nrte_url = "ftp:/x"\n', "tempo.rte_url = 'ftp:/x': expected a base URL"),
    ("[tempo]\npoll_interval_s = 0\n", "tempo.poll_interval_s = 0.0: expected a positive number"),
    ("[battery]\ncapacity_kwh = 0\n", "battery.capacity_kwh = 0.0: expected 0 < kWh <= 1000"),
    ("[battery]\nmin_soc_pct = 100\n", "battery.min_soc_pct = 100.0: expected 0 <= % < 100"),
    ("[battery]\nforecast_share = 1.5\n", "battery.forecast_share = 1.5: expected a share 0..1"),
    ('[battery]\nnormal_output_priority = "battery"\n', "battery.normal_output_priority = 'battery'"),
    ("[battery]\nautomate = true\n", "battery.automate = true needs a PI30"),
])
def test_tariff_tempo_and_battery_ranges(tmp_path, text, fragment):
    assert fragment in error_of(tmp_path, text)
