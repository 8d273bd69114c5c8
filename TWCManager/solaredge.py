"""The `solaredge` command: grid, solar or house power from a SolarEdge inverter, in watts.

    python -m TWCManager.solaredge [--config F] [--host H] [--port N] (-grid | -solar | -house | --json | --stream)

Contract (decisions.md §2): one integer and a newline on stdout, exit 0; grid is + for export
and − for import, solar is the inverter's AC power, house = solar − grid. `--json` prints all
three and a timestamp from one connection. On any failure it prints `Inverter unreachable` on
stdout, the details on stderr, and exits with status 255, within 3 s in all.

`--stream` (what the daemon runs, energy/stream.py): for each line read on stdin, one reading as
one JSON line on stdout, the `--json` object or `{"error": "Inverter unreachable", "detail": …}`;
exit 0 at the end of stdin. Each request connects, reads and disconnects like a single call, so
Home Assistant can still read the inverter between two requests; what the stream saves is the
interpreter start and the pymodbus import of every reading.

How it reads (spec/solaredge.md):
- one connection per call, opened and closed here: the inverter serves one client at a time;
- the library (`solaredge_modbus.Inverter`) connects and discovers the meters; the values are
  read as raw register ranges through the library's own pymodbus client, so each value comes
  with its scale factor in ONE request (SolarEdge changes scale factors between reads, and two
  reads could pair a new value with an old factor), and so the not-implemented sentinels can be
  told apart (the library turns int16 0x8000 into -32768 and a failed read into False == 0);
- every request is bounded by min(timeout_s, time left), and a watchdog thread ends the process
  at a hard deadline whatever the library or the network is doing.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

UNREACHABLE_TEXT = "Inverter unreachable"
EXIT_UNREACHABLE = 255
EXIT_USAGE = 2

# Interpreter start-up (~0.05 s, more on a Pi) comes before main(); importing pymodbus
# (~0.1 s here, up to ~0.6 s on a Pi 3) comes after. 2.5 s from main() keeps the total under 3 s.
HARD_DEADLINE_S = 2.5
# The orderly path gives up here, so a normal failure is reported (with details) before the
# watchdog has to step in.
SOFT_DEADLINE_S = 2.2
# One attempt per request: a retry after a timeout would not fit in the 3 s.
LIBRARY_RETRIES = 1
MIN_REQUEST_TIMEOUT_S = 0.05

# Inverter registers read in one request: power_ac (40083) … status (40107), 25 registers.
_INV_POWER_OFFSET = 0     # from power_ac
_INV_POWER_SF_OFFSET = 1
_INV_STATUS_OFFSET = 24
_INV_BLOCK_LEN = 25
# Meter registers read in one request: power (40206) … power_scale (40210).
_METER_POWER_SF_OFFSET = 4
_METER_BLOCK_LEN = 5

NOT_IMPLEMENTED_INT16 = 0x8000
NOT_IMPLEMENTED_UINT16 = 0xFFFF
SF_LIMIT = 10             # SunSpec scale factors are -10..10
STATUS_OFF = 1
STATUS_SLEEPING = 2

log = logging.getLogger("TWCManager.solaredge")


class InverterError(Exception):
    """No trustworthy reading; the message says what went wrong."""


@dataclass(frozen=True)
class InverterReading:
    """Watts with scale factors applied; None for a value not asked for. t = time.time()."""

    solar_w: float | None
    grid_w: float | None
    t: float
    status: int | None = None

    @property
    def house_w(self) -> float | None:
        if self.solar_w is None or self.grid_w is None:
            return None
        return self.solar_w - self.grid_w


# ---- decoding (pure) -------------------------------------------------------------------


def int16(raw: int) -> int:
    """A register as a signed 16-bit value."""
    raw &= 0xFFFF
    return raw - 0x10000 if raw & 0x8000 else raw


def scaled(raw_value: int, raw_sf: int, what: str) -> float:
    """value × 10^sf from two raw int16 registers; InverterError on a sentinel or a wild SF."""
    if raw_value & 0xFFFF == NOT_IMPLEMENTED_INT16:
        raise InverterError(f"{what}: value not implemented (0x8000)")
    if raw_sf & 0xFFFF == NOT_IMPLEMENTED_INT16:
        raise InverterError(f"{what}: scale factor not implemented (0x8000)")
    sf = int16(raw_sf)
    if not -SF_LIMIT <= sf <= SF_LIMIT:
        raise InverterError(f"{what}: scale factor {sf} outside -{SF_LIMIT}..{SF_LIMIT}")
    return int16(raw_value) * 10.0 ** sf


def solar_from_block(regs: Sequence[int]) -> tuple[float, int | None]:
    """(solar_w, status) from the 25 registers power_ac … status.

    An inverter that says it is off or asleep (night) may mark its power not implemented; that
    is a true 0 W, not a failure. While it claims to produce, a sentinel is a failure.
    """
    status = regs[_INV_STATUS_OFFSET]
    status = None if status == NOT_IMPLEMENTED_UINT16 else status
    raw_w, raw_sf = regs[_INV_POWER_OFFSET], regs[_INV_POWER_SF_OFFSET]
    if status in (STATUS_OFF, STATUS_SLEEPING) and NOT_IMPLEMENTED_INT16 in (raw_w & 0xFFFF, raw_sf & 0xFFFF):
        return 0.0, status
    return scaled(raw_w, raw_sf, "inverter power_ac"), status


def is_export_import(option: Any) -> bool:
    text = option.lower() if isinstance(option, str) else ""
    return "export" in text and "import" in text


# ---- reading -----------------------------------------------------------------------------


class _LastError(logging.Handler):
    """Keeps pymodbus's last complaint for our own message instead of printing it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            try:
                self.message = record.getMessage()
            except Exception:  # a bad format string in the library must not hide our error
                self.message = str(record.msg)


_pymodbus_errors = _LastError()


def quiet_pymodbus(verbose_handler: logging.Handler | None = None) -> None:
    """pymodbus logs an ERROR line on every refused connect; keep stderr to our own words
    (its last complaint goes into our message). With a handler (-v), show all it says."""
    logger = logging.getLogger("pymodbus")
    logger.setLevel(logging.DEBUG if verbose_handler else logging.WARNING)
    logger.propagate = False
    if _pymodbus_errors not in logger.handlers:
        logger.addHandler(_pymodbus_errors)
    if verbose_handler is not None and verbose_handler not in logger.handlers:
        logger.addHandler(verbose_handler)


def _budget(inv: Any, timeout_s: float, deadline: float, what: str) -> None:
    """Bound the next request by min(timeout_s, time left before the deadline)."""
    left_s = deadline - time.monotonic()
    if left_s < MIN_REQUEST_TIMEOUT_S:
        raise InverterError(f"out of time before {what}")
    # pymodbus 3.6 takes both its connect and its receive timeout from here, at each call.
    inv.client.comm_params.timeout_connect = min(timeout_s, left_s)


def _read_registers(inv: Any, address: int, count: int, what: str) -> list[int]:
    """One FC3 request through the library's pymodbus client, on the connection we hold."""
    if not inv.connected():
        raise InverterError(f"{what}: connection lost")
    try:
        rr = inv.client.read_holding_registers(address, count, slave=inv.unit)
    except Exception as e:  # pymodbus raises ConnectionException, OSError, …
        raise InverterError(f"{what}: {e}") from e
    registers = getattr(rr, "registers", None)
    if rr is None or rr.isError() or registers is None:
        extra = f" ({_pymodbus_errors.message})" if _pymodbus_errors.message else ""
        raise InverterError(f"{what}: {rr}{extra}")
    if len(registers) != count:
        raise InverterError(f"{what}: {len(registers)} registers instead of {count}")
    return list(registers)


def _grid_meter(inv: Any) -> tuple[str, Any]:
    """The Export+Import meter (the one at the grid connection), found by the library.

    Meter1 without a readable option is accepted, as LennyBo's script did; a meter that says it
    measures production or consumption never is (its sign means something else).
    """
    meters = inv.meters()
    if not inv.connected():
        raise InverterError("meter discovery: connection lost")
    if not meters:
        raise InverterError("no meter found (meter discovery returned none)")
    options: dict[str, Any] = {}
    for name, meter in meters.items():
        option = meter.read("c_option").get("c_option")
        if is_export_import(option):
            return name, meter
        options[name] = option
    if not inv.connected():
        raise InverterError("meter discovery: connection lost")
    # A failed or empty string read comes back as False, or as "False" (the library passes
    # its not-implemented False through str()).
    first = options.get("Meter1")
    if "Meter1" in meters and first in (False, None, "", "False"):
        log.warning("Meter1 does not name its mode; taking it as the grid (Export+Import) meter")
        return "Meter1", meters["Meter1"]
    found = ", ".join(f"{n}={o!r}" for n, o in options.items())
    raise InverterError(f"no Export+Import meter ({found})")


def read_inverter(host: str, port: int, *, unit: int = 1, timeout_s: float = 1.0,
                  solar: bool = True, grid: bool = True, deadline: float | None = None) -> InverterReading:
    """Connect, read what is asked for, disconnect. Raises InverterError on any doubt.

    The inverter block is read even for grid alone: it is one cheap request that proves the
    link before the library's meter discovery (three requests) runs on it.
    """
    import solaredge_modbus  # here, not at the top: the module must import fast

    deadline = time.monotonic() + SOFT_DEADLINE_S if deadline is None else deadline
    _pymodbus_errors.message = None
    inv = solaredge_modbus.Inverter(host=host, port=port, timeout=timeout_s, unit=unit,
                                    retries=LIBRARY_RETRIES)
    try:
        _budget(inv, timeout_s, deadline, "connecting")
        if not inv.connect():
            raise InverterError(f"cannot connect: {_pymodbus_errors.message or 'connect failed'}")
        # One connection per call: after a failed request the library's retry loop (and
        # pymodbus itself) would reconnect on their own, and a silent inverter would then cost
        # a second timeout. The meters share this client, so this holds for them too.
        client = inv.client
        client.connect = client.is_socket_open
        _budget(inv, timeout_s, deadline, "reading the inverter")
        block = _read_registers(inv, inv.registers["power_ac"][0], _INV_BLOCK_LEN, "inverter power")
        solar_w, status = solar_from_block(block) if solar else (None, None)
        if not solar:
            status = block[_INV_STATUS_OFFSET]
        grid_w = None
        if grid:
            _budget(inv, timeout_s, deadline, "meter discovery")
            name, meter = _grid_meter(inv)
            _budget(inv, timeout_s, deadline, "reading the meter")
            regs = _read_registers(inv, meter.registers["power"][0], _METER_BLOCK_LEN, f"{name} power")
            grid_w = scaled(regs[0], regs[_METER_POWER_SF_OFFSET], f"{name} power")
        return InverterReading(solar_w=solar_w, grid_w=grid_w, t=time.time(), status=status)
    finally:
        inv.disconnect()


# ---- the command -------------------------------------------------------------------------


class _Watchdog:
    """Ends the process with the failure output at the hard deadline, whatever main is doing.

    Whoever takes the lock first owns the output: the watchdog (prints, then os._exit), or main
    (the watchdog then does nothing). A thread, not signal.alarm: a signal handler runs only
    between bytecodes of the main thread, and a library stuck in C code would delay it.
    """

    def __init__(self, timeout_s: float):
        self._lock = threading.Lock()
        self._timer = threading.Timer(timeout_s, self._fire)
        self._timer.daemon = True
        self._claimed = False
        self.timeout_s = timeout_s

    def start(self) -> None:
        self._timer.start()

    def _fire(self) -> None:
        if not self._lock.acquire(blocking=False):
            return
        _fail(f"no result within {self.timeout_s:g} s; giving up")
        os._exit(EXIT_UNREACHABLE)

    def claim(self) -> None:
        """Take the output for main; if the watchdog has it, block until it ends the process.
        Main's thread only; a second call does nothing."""
        if self._claimed:
            return
        self._lock.acquire()
        self._timer.cancel()
        self._claimed = True


def _fail(detail: str) -> None:
    try:
        log.error("%s", detail)
        sys.stdout.write(UNREACHABLE_TEXT + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # a closed stdout must not change the exit status


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="solaredge", allow_abbrev=False,
        description="Print SolarEdge power in watts: grid (+ export, - import), solar (inverter "
                    "AC), house (solar - grid). On failure prints 'Inverter unreachable' and "
                    "exits with status 255.")
    p.add_argument("--config", metavar="F", help="TOML configuration file ([solaredge] host, port, unit, timeout_s)")
    p.add_argument("--host", metavar="H", help="inverter address (overrides solaredge.host)")
    p.add_argument("--port", metavar="N", type=int, help="Modbus TCP port (overrides solaredge.port)")
    p.add_argument("-v", "--verbose", action="store_true", help="log details (and pymodbus's) to stderr")
    what = p.add_mutually_exclusive_group(required=True)
    # Single-dash long options as in LennyBo's script; the double-dash spellings too.
    what.add_argument("-grid", "--grid", dest="what", action="store_const", const="grid",
                      help="grid power, + = export")
    what.add_argument("-solar", "--solar", dest="what", action="store_const", const="solar",
                      help="inverter AC power")
    what.add_argument("-house", "--house", dest="what", action="store_const", const="house",
                      help="house consumption = solar - grid")
    what.add_argument("--json", dest="what", action="store_const", const="json",
                      help='all three and a timestamp: {"grid_w":…,"solar_w":…,"house_w":…,"t":…}')
    what.add_argument("--stream", dest="what", action="store_const", const="stream",
                      help="one --json reading per line read on stdin (or {\"error\": …}), "
                           "until end of input")
    return p


def format_reading(what: str, reading: InverterReading) -> str:
    if what == "json":
        return json.dumps({"grid_w": round(reading.grid_w), "solar_w": round(reading.solar_w),
                           "house_w": round(reading.house_w), "t": round(reading.t, 3)})
    return str(round({"grid": reading.grid_w, "solar": reading.solar_w, "house": reading.house_w}[what]))


class _Once(logging.Filter):
    """Passes each distinct message once: a stream repeats the same warning every request."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


def _setup_logging(verbose: bool, stream: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("solaredge: %(message)s"))
    if stream and not verbose:
        handler.addFilter(_Once())
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)
    log.propagate = False
    quiet_pymodbus(handler if verbose else None)


# ---- where the inverter is ---------------------------------------------------------------

# A copy of what TWCManager.config knows about [solaredge] and where the file is looked for
# (tests/test_solaredge.py checks both copies agree). Importing the config module costs more
# than the rest of a call (measured: 13 ms on top of the 73 ms of `import solaredge_modbus`),
# and a single call must stay close to a bare import (bench/idle_cost.py).
_DEFAULTS = {"host": "127.0.0.1", "port": 1502, "unit": 1, "timeout_s": 1.0}
_ENV_VAR = "TWCMANAGER_CONFIG"
_CONFIG_SEARCH = ("/etc/twcmanager/twcmanager.toml",
                  os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))),
                               "etc", "twcmanager.toml"))


def _quick_settings(config_arg: str | None, host: str | None, port: int | None) -> Any:
    """[solaredge] read straight from the file, or None for anything unusual (a missing or
    broken file, an unknown key, a value out of range): the full loader then says exactly
    what is wrong. Mistakes in other sections do not stop this command."""
    import tomllib
    from types import SimpleNamespace

    explicit = config_arg or os.environ.get(_ENV_VAR, "")
    if explicit:
        path: str | None = os.path.expanduser(explicit)
    else:
        path = next((p for p in _CONFIG_SEARCH if os.path.exists(p)), None)
    section: Any = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                section = tomllib.load(f).get("solaredge", {})
        except (OSError, ValueError):   # TOMLDecodeError and UnicodeDecodeError are ValueErrors
            return None
    if not isinstance(section, dict) or not set(section) <= set(_DEFAULTS):
        return None
    in_file = {**_DEFAULTS, **section}
    v = {**in_file, **{k: x for k, x in (("host", host), ("port", port)) if x is not None}}
    # The file's own values too: the full loader refuses a bad one even when overridden.
    if not (_usable(in_file) and _usable(v)):
        return None
    return SimpleNamespace(host=v["host"], port=v["port"], unit=v["unit"], timeout_s=float(v["timeout_s"]))


def _usable(v: dict) -> bool:
    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    return (isinstance(v["host"], str) and bool(v["host"])
            and whole(v["port"]) and 1 <= v["port"] <= 65535
            and whole(v["unit"]) and 1 <= v["unit"] <= 247
            and isinstance(v["timeout_s"], (int, float)) and not isinstance(v["timeout_s"], bool)
            and 0 < v["timeout_s"] < float("inf"))


class SettingsError(Exception):
    """The configuration is unusable (the full loader's message)."""


def _settings(args: argparse.Namespace, quick: bool) -> Any:
    """[solaredge] host, port, unit, timeout_s; SettingsError if the file is unusable."""
    found = _quick_settings(args.config, args.host, args.port) if quick else None
    if found is not None:
        return found
    from .config import ConfigError, find_and_load_config

    try:
        return find_and_load_config(args.config, {"solaredge.host": args.host,
                                                  "solaredge.port": args.port}).solaredge
    except ConfigError as e:
        raise SettingsError(str(e)) from None


# ---- the stream --------------------------------------------------------------------------


def serve_stream(cfg: Any, requests: Any = None, out: Any = None) -> int:
    """--stream: one JSON line on `out` per line from `requests`, until end of input.

    Failures are answered, not logged: the daemon logs each problem once, not every 2 s.
    A request that overruns is the daemon's to deal with (it restarts a silent stream), so
    there is no watchdog here.
    """
    requests = sys.stdin.buffer if requests is None else requests
    out = sys.stdout if out is None else out
    where = f"{cfg.host}:{cfg.port} unit {cfg.unit}"
    for _request in requests:   # the line's text is not looked at: any line asks for a reading
        started = time.monotonic()
        try:
            reading = read_inverter(cfg.host, cfg.port, unit=cfg.unit, timeout_s=cfg.timeout_s,
                                    deadline=started + SOFT_DEADLINE_S)
            line = format_reading("json", reading)
        except Exception as e:  # InverterError, or a library surprise: still "no reading"
            what = "" if isinstance(e, InverterError) else f"unexpected {type(e).__name__}: "
            line = json.dumps({"error": UNREACHABLE_TEXT, "detail": f"{where}: {what}{e} "
                                                                    f"({time.monotonic() - started:.2f} s)"})
        try:
            out.write(line + "\n")
            out.flush()
        except (OSError, ValueError):   # the reader has gone: nobody to answer
            _silence_stdout()
            return 0
    return 0


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; a closed pipe would then print a traceback.
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# ---- main --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()
    watchdog = _Watchdog(HARD_DEADLINE_S)
    watchdog.start()
    args = build_parser().parse_args(argv)   # exits 2 on a usage error
    stream = args.what == "stream"
    if stream:
        watchdog.claim()   # the 3 s bound is per request, kept by the daemon's timeout
    _setup_logging(args.verbose, stream)
    try:
        # The stream starts once: it can afford the full check of the whole file.
        cfg = _settings(args, quick=not stream)
    except SettingsError as e:
        watchdog.claim()
        log.error("%s", e)
        return EXIT_USAGE
    if stream:
        try:
            return serve_stream(cfg)
        except KeyboardInterrupt:   # Ctrl-C when run by hand
            return 130
    where = f"{cfg.host}:{cfg.port} unit {cfg.unit}"
    try:
        reading = read_inverter(cfg.host, cfg.port, unit=cfg.unit, timeout_s=cfg.timeout_s,
                                solar=args.what != "grid", grid=args.what != "solar",
                                deadline=started + SOFT_DEADLINE_S)
        text = format_reading(args.what, reading)
    except InverterError as e:
        watchdog.claim()
        _fail(f"{where}: {e} ({time.monotonic() - started:.2f} s)")
        return EXIT_UNREACHABLE
    except Exception as e:  # a library surprise is still "no reading", never a traceback and 1
        watchdog.claim()
        _fail(f"{where}: unexpected {type(e).__name__}: {e} ({time.monotonic() - started:.2f} s)")
        return EXIT_UNREACHABLE
    watchdog.claim()
    log.debug("%s: solar %s W, grid %s W, status %s (%.3f s)", where, reading.solar_w,
              reading.grid_w, reading.status, time.monotonic() - started)
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
