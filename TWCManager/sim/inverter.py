"""A simulated SolarEdge inverter with an Export+Import meter, served over Modbus TCP.

`InverterSimulator` is a real Modbus TCP server on 127.0.0.1, written on raw asyncio in a
background thread (not the pymodbus server, whose API changes between releases; see
spec/solaredge.md §2). It serves FC3 (and FC6/FC16) from a live register image laid out like a
SolarEdge inverter as `solaredge_modbus` reads it: the SunSpec common block, inverter model
101/103, meters at 40121 + 174·i, and battery probes that answer 255 (no battery).

Like the real inverter it takes one client at a time: a second connection is accepted and closed
at once. `pause()` keeps accepting and reading but never answers (a hung inverter).

`SunCurve` gives solar and house watts for a time of day; `SunRunner` writes them into the image
every second, optionally faster than real time, for the demo.

Run standalone: `python -m TWCManager.sim.inverter [--port N] [--solar-w W] [--grid-w W] [--sun]`.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import math
import random
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

# ---- the register map (base-0 protocol addresses, as the library sends them) ---------------

COMMON_BASE = 40000          # SunSpec common block, 69 registers ("SunS" … device address)
INVERTER_BASE = 40069        # inverter model: DID, length 50, then 50 data registers
INVERTER_DATA = INVERTER_BASE + 2
METER_BASES = (40121, 40295, 40469)   # meter common blocks, stride 174 (SE technical note)
METER_BLOCK_LEN = 174
BATTERY_PROBES = (0xE140, 0xE240)     # c_deviceaddress of battery 1/2; 255 = none

# Inverter registers (offsets from INVERTER_DATA = 40071).
INV_CURRENT = INVERTER_DATA + 0          # u16 A, l1..l3 follow
INV_CURRENT_SF = INVERTER_DATA + 4
INV_VOLTAGE_LL = INVERTER_DATA + 5       # 3 × u16, then 3 × L-N
INV_VOLTAGE_SF = INVERTER_DATA + 11
POWER_AC = INVERTER_DATA + 12            # 40083, int16 W
POWER_AC_SF = INVERTER_DATA + 13         # 40084
INV_FREQUENCY = INVERTER_DATA + 14
INV_VA = INVERTER_DATA + 16
INV_VAR = INVERTER_DATA + 18
INV_PF = INVERTER_DATA + 20
INV_ENERGY = INVERTER_DATA + 22          # acc32 Wh, high word first
INV_ENERGY_SF = INVERTER_DATA + 24
INV_DC_CURRENT = INVERTER_DATA + 25
INV_DC_VOLTAGE = INVERTER_DATA + 27
INV_DC_POWER = INVERTER_DATA + 29
INV_TEMP_SINK = INVERTER_DATA + 32       # 40103
INV_TEMP_SF = INVERTER_DATA + 35         # 40106
STATUS = INVERTER_DATA + 36              # 40107
VENDOR_STATUS = INVERTER_DATA + 37

# Inverter status values (SunSpec I_Status as SolarEdge uses it).
STATUS_OFF = 1
STATUS_SLEEPING = 2
STATUS_STARTING = 3
STATUS_PRODUCING = 4
STATUS_THROTTLED = 5
STATUS_FAULT = 7

# Meter registers as offsets from a meter's base (40121 for meter 1).
M_OPTION = 34            # str(8): "Export+Import", "Production", "Consumption"
M_DEVICE_ADDRESS = 66
M_DID = 67               # 40188: 201 1-phase … 203 wye 3-phase
M_LENGTH = 68
M_DATA = 69              # 105 data registers follow
M_CURRENT = M_DATA + 0   # int16, l1..l3 follow, sf at +4
M_VOLTAGE = M_DATA + 5   # int16 L-N average, l1n..l3n, L-L average, l12..l31
M_VOLTAGE_SF = M_DATA + 13
M_FREQUENCY = M_DATA + 14
M_POWER = M_DATA + 16    # 40206, int16 W, + = export
M_POWER_SF = M_DATA + 20  # 40210
M_VA_SF = M_DATA + 25
M_VAR_SF = M_DATA + 30
M_PF = M_DATA + 31
M_PF_SF = M_DATA + 35
M_EXPORT_WH = M_DATA + 36   # u32, l1..l3 follow
M_IMPORT_WH = M_DATA + 44
M_ENERGY_SF = M_DATA + 52   # 40242
M_APPARENT_ENERGY_SF = M_DATA + 69
M_REACTIVE_ENERGY_SF = M_DATA + 102

NOT_IMPLEMENTED_INT16 = 0x8000   # SunSpec "not implemented" for int16 values and scale factors
NOT_IMPLEMENTED_UINT16 = 0xFFFF

# SunSpec scale factors range over -10..10; the ones a simulated meter picks by itself stay
# in the range real SolarEdge devices use.
AUTO_SF = "auto"
_AUTO_SF_RANGE = range(-2, 5)

NOMINAL_VOLTS = 230.0

# Modbus exception codes.
EXC_ILLEGAL_FUNCTION = 0x01
EXC_ILLEGAL_ADDRESS = 0x02
EXC_ILLEGAL_VALUE = 0x03
EXC_GATEWAY_TARGET = 0x0B

_MAX_READ_REGS = 125
_MAX_WRITE_REGS = 123
_START_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 5.0
_HANDOVER_GRACE_S = 0.05


def _u16(value: int) -> int:
    return int(value) & 0xFFFF


def _fit_raw(value: float, sf: int) -> int:
    """Raw int16 for a physical value at a scale factor; ValueError when it does not fit."""
    raw = round(value / 10 ** sf)
    if not -32767 <= raw <= 32767:   # -32768 is the not-implemented sentinel
        raise ValueError(f"{value} does not fit an int16 register at scale factor {sf}")
    return raw


def _auto_sf(value: float) -> int:
    """The finest scale factor at which value fits, as the inverter picks it between reads."""
    for sf in _AUTO_SF_RANGE:
        if abs(round(value / 10 ** sf)) <= 32767:
            return sf
    raise ValueError(f"{value} is too large for a simulated power register")


def _string_regs(text: str, n_regs: int) -> list[int]:
    data = text.encode("ascii")[: 2 * n_regs].ljust(2 * n_regs, b"\0")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def _u32_regs(value: int) -> list[int]:
    value = int(value) & 0xFFFFFFFF
    return [value >> 16, value & 0xFFFF]


# ---- the server -----------------------------------------------------------------------------


@dataclass
class _Channel:
    """One power value with its scale factor (solar = inverter AC power, grid = E+I meter)."""
    watts: float
    sf: int | str   # an int, or AUTO_SF to pick the finest that fits on each change


class InverterSimulator:
    """A SolarEdge inverter + meter(s) on Modbus TCP (see the module docstring).

    Use as a context manager, or call start() and stop(). `port` is the bound port once started
    (0 at construction picks a free one). Every setter may be called from any thread while the
    server runs; a value and its scale factor change together, so no read sees half an update.
    """

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", unit: int = 1,
                 solar_w: float = 0.0, grid_w: float = 0.0,
                 solar_sf: int | str = AUTO_SF, grid_sf: int | str = AUTO_SF,
                 status: int = STATUS_PRODUCING, phases: int = 3,
                 meter_options: Sequence[str] = ("Export+Import",),
                 model: str = "SE9K-RW0TEBEN4", serial: str = "7E1A2B3C"):
        if phases not in (1, 3):
            raise ValueError("phases must be 1 or 3")
        if not 1 <= len(meter_options) <= len(METER_BASES):
            raise ValueError(f"1 to {len(METER_BASES)} meters")
        self.host = host
        self.port = port
        self.unit = unit
        self.phases = phases
        self.meter_options = tuple(meter_options)
        # The meter whose power is the grid exchange; the others mirror the inverter
        # (Production) or the house (Consumption).
        self.grid_meter = next((i for i, o in enumerate(self.meter_options) if o == "Export+Import"), None)
        self._lock = threading.Lock()
        self._image: dict[int, int] = {}
        self._solar = _Channel(0.0, solar_sf)
        self._grid = _Channel(0.0, grid_sf)
        self._energy_at_mono: float | None = None
        self._inverter_wh = 3_466_757.0
        self._export_wh = 1_000_000.0
        self._import_wh = 2_000_000.0
        self._paused = False
        # Statistics, for tests.
        self.connections_accepted = 0
        self.connections_refused = 0
        self.requests_served = 0
        self.requests_ignored = 0
        # (unit, function code, address, count) of every request answered, newest last.
        self.request_log: collections.deque[Request] = collections.deque(maxlen=10_000)
        self._active_writer: asyncio.StreamWriter | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._build_image(model, serial, status)
        self.set_power(solar_w=solar_w, grid_w=grid_w)

    # -- register image ------------------------------------------------------------------

    def _build_image(self, model: str, serial: str, status: int) -> None:
        img = self._image

        def put(addr: int, values: Iterable[int]) -> None:
            for i, v in enumerate(values):
                img[addr + i] = _u16(v)

        # Common block: "SunS", DID 1, length 65, strings, device address.
        put(COMMON_BASE, _string_regs("SunS", 2))
        put(COMMON_BASE + 2, [1, 65])
        put(COMMON_BASE + 4, _string_regs("SolarEdge", 16))
        put(COMMON_BASE + 20, _string_regs(model, 16))
        put(COMMON_BASE + 36, _string_regs("", 8))          # C_Options: not implemented on SE
        put(COMMON_BASE + 44, _string_regs("0004.0018.0518", 8))
        put(COMMON_BASE + 52, _string_regs(serial, 16))
        put(COMMON_BASE + 68, [self.unit])
        # Inverter model 101 (1-phase) or 103 (3-phase), 50 registers.
        put(INVERTER_BASE, [101 if self.phases == 1 else 103, 50])
        put(INVERTER_DATA, [0] * 50)
        put(INV_CURRENT_SF, [-2])
        volts_ll = NOMINAL_VOLTS * math.sqrt(3) if self.phases == 3 else 0
        put(INV_VOLTAGE_LL, [round(volts_ll * 10)] * 3 + [round(NOMINAL_VOLTS * 10)] * 3)
        put(INV_VOLTAGE_SF, [-1])
        put(INV_FREQUENCY, [5000, -2])
        put(INV_VAR, [0, 0])
        put(INV_PF, [10000, -2])
        put(INV_ENERGY_SF, [0])
        put(INV_DC_CURRENT + 1, [-3])
        put(INV_DC_VOLTAGE, [7500, -1])
        put(INV_TEMP_SINK, [4250])
        put(INV_TEMP_SF, [-2])
        put(STATUS, [status, 0])
        put(INVERTER_DATA + 38, [NOT_IMPLEMENTED_UINT16] * 12)   # events, not used by the lib
        # Meters.
        for i, option in enumerate(self.meter_options):
            base = METER_BASES[i]
            put(base, [1, 65])
            put(base + 2, _string_regs("WattNode", 16))
            put(base + 18, _string_regs("WNC-3Y-400-MB", 16))
            put(base + M_OPTION, _string_regs(option, 8))
            put(base + M_OPTION + 8, _string_regs("31", 8))
            put(base + M_OPTION + 16, _string_regs(f"{5_000_000 + i}", 16))
            put(base + M_DEVICE_ADDRESS, [self.unit])
            put(base + M_DID, [201 if self.phases == 1 else 203, 105])
            put(base + M_DATA, [0] * 105)
            put(base + M_CURRENT + 4, [-2])
            put(base + M_VOLTAGE, [round(NOMINAL_VOLTS * 10)] * 4)
            put(base + M_VOLTAGE + 4, [round(NOMINAL_VOLTS * math.sqrt(3) * 10)] * 4)
            put(base + M_VOLTAGE_SF, [-1])
            put(base + M_FREQUENCY, [5000, -2])
            put(base + M_VA_SF, [0])
            put(base + M_VAR_SF, [0])
            put(base + M_PF, [10000] * 4 + [-2])
            put(base + M_ENERGY_SF, [0])
            put(base + M_APPARENT_ENERGY_SF, [0])
            put(base + M_REACTIVE_ENERGY_SF, [0])
        # End of the SunSpec chain after the last meter; later meter slots do not exist (probes
        # there get exception 0x02, as "only enabled meters are readable").
        end = METER_BASES[len(self.meter_options) - 1] + METER_BLOCK_LEN
        put(end, [0xFFFF, 0])
        for probe in BATTERY_PROBES:
            img[probe] = 255
        # Power control blocks that Inverter.read_all() also reads (batches 3-5).
        put(0xF000, [0, 100] + list(struct.unpack(">HH", struct.pack(">f", 1.0))))
        put(0xF100, [0] * 0x44)
        put(0xF700, [0] * 4)

    def _meter_power_w(self, option: str) -> float:
        if option == "Export+Import":
            return self._grid.watts
        if option == "Production":
            return self._solar.watts
        return self._solar.watts - self._grid.watts    # Consumption: the house

    def _write_power(self) -> None:
        """Write both channels and everything derived from them (call with the lock held)."""
        img = self._image
        solar = self._solar
        solar_sf = _auto_sf(solar.watts) if solar.sf == AUTO_SF else int(solar.sf)
        img[POWER_AC] = _u16(_fit_raw(solar.watts, solar_sf))
        img[POWER_AC_SF] = _u16(solar_sf)
        amps = abs(solar.watts) / (NOMINAL_VOLTS * self.phases)
        per_phase = [round(amps * 100)] * 3 if self.phases == 3 else [round(amps * 100), 0, 0]
        for i, v in enumerate([round(amps * self.phases * 100)] + per_phase):
            img[INV_CURRENT + i] = _u16(v)
        img[INV_VA] = img[POWER_AC]
        img[INV_VA + 1] = img[POWER_AC_SF]
        energy_regs = _u32_regs(int(self._inverter_wh))
        img[INV_ENERGY], img[INV_ENERGY + 1] = energy_regs
        dc_w = solar.watts / 0.975 if solar.watts > 0 else 0.0
        dc_sf = _auto_sf(dc_w)
        img[INV_DC_POWER] = _u16(_fit_raw(dc_w, dc_sf))
        img[INV_DC_POWER + 1] = _u16(dc_sf)
        img[INV_DC_CURRENT] = _u16(round(dc_w / 750.0 * 1000))
        for i, option in enumerate(self.meter_options):
            base = METER_BASES[i]
            if i == self.grid_meter:
                watts, sf = self._grid.watts, self._grid.sf
            else:
                watts, sf = self._meter_power_w(option), AUTO_SF
            sf = _auto_sf(watts) if sf == AUTO_SF else int(sf)
            img[base + M_POWER] = _u16(_fit_raw(watts, sf))
            for p in range(3):
                share = watts / 3 if self.phases == 3 else (watts if p == 0 else 0.0)
                img[base + M_POWER + 1 + p] = _u16(_fit_raw(share, sf))
            img[base + M_POWER_SF] = _u16(sf)
            amps = watts / (NOMINAL_VOLTS * self.phases)
            img[base + M_CURRENT] = _u16(round(amps * self.phases * 100))
            for p in range(3):
                img[base + M_CURRENT + 1 + p] = _u16(round(amps * 100) if self.phases == 3 or p == 0 else 0)
            img[base + M_EXPORT_WH], img[base + M_EXPORT_WH + 1] = _u32_regs(int(self._export_wh))
            img[base + M_IMPORT_WH], img[base + M_IMPORT_WH + 1] = _u32_regs(int(self._import_wh))

    def _advance_energy(self) -> None:
        # Energy counters integrate the power in force since the previous change.
        now = time.monotonic()
        if self._energy_at_mono is not None:
            hours = (now - self._energy_at_mono) / 3600.0
            self._inverter_wh += max(self._solar.watts, 0.0) * hours
            self._export_wh += max(self._grid.watts, 0.0) * hours
            self._import_wh += max(-self._grid.watts, 0.0) * hours
        self._energy_at_mono = now

    def set_power(self, solar_w: float | None = None, grid_w: float | None = None,
                  solar_sf: int | str | None = None, grid_sf: int | str | None = None) -> None:
        """Change the inverter's AC power and/or the grid meter's power (+ = export), in watts.

        A scale factor of None keeps the current one; AUTO_SF picks the finest that fits (the
        real inverter changes its scale factors by itself). Raises ValueError, changing nothing,
        when a value does not fit its register at the scale factor asked for.
        """
        with self._lock:
            old = (self._solar.watts, self._solar.sf, self._grid.watts, self._grid.sf)
            self._advance_energy()
            if solar_w is not None:
                self._solar.watts = float(solar_w)
            if solar_sf is not None:
                self._solar.sf = solar_sf
            if grid_w is not None:
                self._grid.watts = float(grid_w)
            if grid_sf is not None:
                self._grid.sf = grid_sf
            try:
                self._write_power()
            except ValueError:
                self._solar.watts, self._solar.sf, self._grid.watts, self._grid.sf = old
                self._write_power()
                raise

    def power(self) -> tuple[float, float]:
        """(solar_w, grid_w) as last set."""
        with self._lock:
            return self._solar.watts, self._grid.watts

    def set_status(self, status: int, vendor_status: int = 0) -> None:
        """Inverter status: 1 off, 2 sleeping, 3 starting, 4 producing, 5 throttled, 7 fault…"""
        self.set_registers(STATUS, [status, vendor_status])

    def set_register(self, addr: int, value: int) -> None:
        """Write one raw register (e.g. NOT_IMPLEMENTED_INT16 into a scale factor)."""
        self.set_registers(addr, [value])

    def set_registers(self, addr: int, values: Sequence[int]) -> None:
        with self._lock:
            for i, v in enumerate(values):
                self._image[addr + i] = _u16(v)

    def get_registers(self, addr: int, count: int = 1) -> list[int]:
        """Raw registers from the image; KeyError for an address the map does not have."""
        with self._lock:
            return [self._image[addr + i] for i in range(count)]

    def remove_registers(self, addr: int, count: int = 1) -> None:
        """Take addresses out of the map, so reads there get exception 0x02."""
        with self._lock:
            for i in range(count):
                self._image.pop(addr + i, None)

    # -- hung inverter ---------------------------------------------------------------------

    def pause(self) -> None:
        """Keep accepting and reading requests, but never answer them."""
        self._paused = True

    def resume(self) -> None:
        """Answer again (requests that came in while paused stay unanswered)."""
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def active_clients(self) -> int:
        return 0 if self._active_writer is None else 1

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> InverterSimulator:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name=f"inverter-sim:{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise RuntimeError("the inverter simulator did not start")
        if self._start_error is not None:
            self._thread.join(_STOP_TIMEOUT_S)
            raise self._start_error
        return self

    def stop(self) -> None:
        """Close every connection and the listening socket; safe to call twice."""
        loop, event, thread = self._loop, self._stop_event, self._thread
        if loop is not None and event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:   # the loop closed in between
                pass
        if thread is not None:
            thread.join(_STOP_TIMEOUT_S)

    def __enter__(self) -> InverterSimulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        try:
            server = await asyncio.start_server(self._on_connect, self.host, self.port)
        except OSError as e:
            self._start_error = e
            self._ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            server.close()
            # Closing a transport ends its handler (the reader sees EOF); cancel only stragglers.
            for writer in list(self._writers):
                writer.close()
            if self._tasks:
                _, pending = await asyncio.wait(list(self._tasks), timeout=1.0)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            await server.wait_closed()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self._active_writer is not None:
                # A client that has just closed may not be processed yet when the next one
                # connects (a command run right after another); give it a moment to go.
                deadline = time.monotonic() + _HANDOVER_GRACE_S
                while self._active_writer is not None and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
            if self._active_writer is not None:
                # The real inverter serves one Modbus TCP client; others are dropped at once.
                self.connections_refused += 1
                return
            self.connections_accepted += 1
            self._active_writer = writer
            try:
                await self._serve_client(reader, writer)
            finally:
                self._active_writer = None
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Only at stop(); ending quietly keeps asyncio from reporting the cancelled task.
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            header = await reader.readexactly(7)
            tid, pid, length, unit = struct.unpack(">HHHB", header)
            if pid != 0 or not 2 <= length <= 254:
                return   # not Modbus TCP: drop the connection as a device would
            pdu = await reader.readexactly(length - 1)
            if self._paused:
                self.requests_ignored += 1
                continue
            reply = self._answer(unit, pdu)
            self.requests_served += 1
            writer.write(struct.pack(">HHHB", tid, 0, len(reply) + 1, unit) + reply)
            await writer.drain()

    def _answer(self, unit: int, pdu: bytes) -> bytes:
        fc = pdu[0]
        if len(pdu) >= 5:
            addr, count = struct.unpack(">HH", pdu[1:5])
            self.request_log.append(Request(unit, fc, addr, 1 if fc == 6 else count))
        if unit != self.unit:
            return bytes([fc | 0x80, EXC_GATEWAY_TARGET])
        try:
            if fc == 3:
                return self._read_holding(pdu)
            if fc == 6:
                return self._write_single(pdu)
            if fc == 16:
                return self._write_multiple(pdu)
            return bytes([fc | 0x80, EXC_ILLEGAL_FUNCTION])
        except _ModbusError as e:
            return bytes([fc | 0x80, e.code])
        except struct.error:
            return bytes([fc | 0x80, EXC_ILLEGAL_VALUE])

    def _read_holding(self, pdu: bytes) -> bytes:
        addr, count = struct.unpack(">HH", pdu[1:5])
        if not 1 <= count <= _MAX_READ_REGS:
            raise _ModbusError(EXC_ILLEGAL_VALUE)
        with self._lock:   # one request sees one consistent image
            try:
                values = [self._image[a] for a in range(addr, addr + count)]
            except KeyError:
                raise _ModbusError(EXC_ILLEGAL_ADDRESS) from None
        return struct.pack(f">BB{count}H", 3, 2 * count, *values)

    def _write_single(self, pdu: bytes) -> bytes:
        addr, value = struct.unpack(">HH", pdu[1:5])
        with self._lock:
            if addr not in self._image:
                raise _ModbusError(EXC_ILLEGAL_ADDRESS)
            self._image[addr] = value
        return pdu[:5]

    def _write_multiple(self, pdu: bytes) -> bytes:
        addr, count, nbytes = struct.unpack(">HHB", pdu[1:6])
        if not 1 <= count <= _MAX_WRITE_REGS or nbytes != 2 * count or len(pdu) != 6 + nbytes:
            raise _ModbusError(EXC_ILLEGAL_VALUE)
        values = struct.unpack(f">{count}H", pdu[6:6 + nbytes])
        with self._lock:
            if any(a not in self._image for a in range(addr, addr + count)):
                raise _ModbusError(EXC_ILLEGAL_ADDRESS)
            for i, v in enumerate(values):
                self._image[addr + i] = v
        return pdu[:5]


class Request(NamedTuple):
    unit: int
    function: int
    address: int
    count: int


class _ModbusError(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


# ---- the sun ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cloud:
    centre_h: float
    half_width_h: float
    depth: float        # fraction of the sun it takes away at its centre


@dataclass(frozen=True)
class SunCurve:
    """Solar production and house load for a time of day (hours since local midnight).

    Production is a bell from sunrise to sunset peaking midway, `sin(pi·x)^1.5` shaped; with a
    seed, passing clouds (drawn once from that seed, so a day repeats exactly) dent it. The house
    draws a base load, a fridge-like cycle and two cooking peaks.
    """

    peak_w: float = 9000.0
    sunrise_h: float = 7.0
    sunset_h: float = 19.0
    house_base_w: float = 400.0
    seed: int | None = None          # None = a clear day
    clouds_per_h: float = 1.5
    _clouds: tuple[_Cloud, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.sunrise_h < self.sunset_h <= 24:
            raise ValueError("expected 0 <= sunrise_h < sunset_h <= 24")
        clouds: list[_Cloud] = []
        if self.seed is not None:
            rng = random.Random(self.seed)
            n = round(self.clouds_per_h * (self.sunset_h - self.sunrise_h))
            for _ in range(n):
                clouds.append(_Cloud(centre_h=rng.uniform(self.sunrise_h, self.sunset_h),
                                     half_width_h=rng.uniform(2, 20) / 60,
                                     depth=rng.uniform(0.3, 0.85)))
        object.__setattr__(self, "_clouds", tuple(clouds))

    @property
    def noon_h(self) -> float:
        return (self.sunrise_h + self.sunset_h) / 2

    def clear_sky_w(self, hour: float) -> float:
        hour %= 24
        if not self.sunrise_h < hour < self.sunset_h:
            return 0.0
        x = (hour - self.sunrise_h) / (self.sunset_h - self.sunrise_h)
        return self.peak_w * math.sin(math.pi * x) ** 1.5

    def solar_w(self, hour: float) -> float:
        watts = self.clear_sky_w(hour)
        hour %= 24
        for c in self._clouds:
            d = abs(hour - c.centre_h)
            if d < c.half_width_h:
                # Soft edges: a cosine bump, full depth at the centre.
                watts *= 1 - c.depth * 0.5 * (1 + math.cos(math.pi * d / c.half_width_h))
        return watts

    def house_w(self, hour: float) -> float:
        hour %= 24
        watts = self.house_base_w
        # Fridge/freezer: 120 W for 20 minutes of every hour (offset by the seed).
        offset_h = ((self.seed or 0) % 60) / 60
        if (hour + offset_h) % 1.0 < 1 / 3:
            watts += 120
        for start_h, end_h, extra_w in ((12.0, 12.75, 2000.0), (18.5, 19.25, 2500.0)):
            if start_h <= hour < end_h:
                watts += extra_w
        return watts

    def at(self, hour: float) -> tuple[float, float]:
        """(solar_w, house_w) at that hour."""
        return self.solar_w(hour), self.house_w(hour)


class SunRunner:
    """Writes a SunCurve into a simulator every `interval_s`, in a background thread.

    The simulated time of day starts at `start_h` (default: the local time now) and runs
    `speedup` times faster than real time. grid = solar − house − extra load, where `load_w`
    (optional, called from the runner's thread) adds e.g. what the simulated car draws, so the
    meter sees the car like a real one would.
    """

    def __init__(self, sim: InverterSimulator, curve: SunCurve, *, speedup: float = 1.0,
                 start_h: float | None = None, interval_s: float = 1.0,
                 load_w: Callable[[], float] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if speedup <= 0 or interval_s <= 0:
            raise ValueError("speedup and interval_s must be positive")
        if start_h is None:
            now = time.localtime()
            start_h = now.tm_hour + now.tm_min / 60 + now.tm_sec / 3600
        self.sim = sim
        self.curve = curve
        self.speedup = speedup
        self.start_h = start_h
        self.interval_s = interval_s
        self.load_w = load_w
        self._clock = clock
        self._t0 = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: dict[str, float] = {}

    def hour(self) -> float:
        """The simulated time of day, in hours."""
        return (self.start_h + (self._clock() - self._t0) * self.speedup / 3600) % 24

    def step(self, hour: float | None = None) -> dict[str, float]:
        """Write the values for `hour` (default: the simulated now) into the simulator."""
        hour = self.hour() if hour is None else hour
        solar_w, house_w = self.curve.at(hour)
        extra_w = float(self.load_w()) if self.load_w is not None else 0.0
        grid_w = solar_w - house_w - extra_w
        # Scale factors follow the values, as the real inverter's do.
        self.sim.set_power(solar_w=solar_w, grid_w=grid_w, solar_sf=AUTO_SF, grid_sf=AUTO_SF)
        self.sim.set_status(STATUS_PRODUCING if solar_w > 0 else STATUS_SLEEPING)
        self.last = {"hour": hour, "solar_w": solar_w, "house_w": house_w,
                     "load_w": extra_w, "grid_w": grid_w}
        return self.last

    def start(self) -> SunRunner:
        self.step()
        self._thread = threading.Thread(target=self._run, name="sun-runner", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT_S)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.step()

    def __enter__(self) -> SunRunner:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---- standalone -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m TWCManager.sim.inverter",
        description="Simulated SolarEdge inverter + Export+Import meter on Modbus TCP "
                    "(127.0.0.1). Prints the port on the first line of stdout.")
    p.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    p.add_argument("--unit", type=int, default=1, help="Modbus unit id (default 1)")
    p.add_argument("--solar-w", type=float, default=0.0, help="inverter AC power, W")
    p.add_argument("--grid-w", type=float, default=0.0, help="grid meter power, W (+ = export)")
    p.add_argument("--sun", action="store_true", help="follow a sun curve instead of fixed values")
    p.add_argument("--peak-w", type=float, default=9000.0, help="with --sun: peak solar power")
    p.add_argument("--seed", type=int, default=None, help="with --sun: passing clouds from this seed")
    p.add_argument("--speedup", type=float, default=1.0,
                   help="with --sun: simulated seconds per real second")
    p.add_argument("--start-hour", type=float, default=None,
                   help="with --sun: simulated time of day to start at (default: now)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sim = InverterSimulator(args.port, unit=args.unit, solar_w=args.solar_w, grid_w=args.grid_w)
    try:
        sim.start()
    except OSError as e:
        print(f"cannot listen on 127.0.0.1:{args.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    runner = None
    if args.sun:
        runner = SunRunner(sim, SunCurve(peak_w=args.peak_w, seed=args.seed),
                           speedup=args.speedup, start_h=args.start_hour).start()
    print(sim.port, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(5.0 if runner else 3600.0):
            if runner:
                v = runner.last
                print(f"{int(v['hour']):02d}:{int(v['hour'] % 1 * 60):02d} solar {v['solar_w']:.0f} W "
                      f"house {v['house_w']:.0f} W grid {v['grid_w']:+.0f} W", file=sys.stderr, flush=True)
    finally:
        if runner:
            runner.stop()
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
