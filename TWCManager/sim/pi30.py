"""A simulated PI30 battery inverter (issue 11): `python -m TWCManager.sim.pi30 --pty --link PATH`
(or `--port DEV` on a real serial port).

`Pi30Model` is the physics, pure and stepped by the caller: PV from a sun curve, a house load,
a battery that charges and discharges by the two priorities, the mode letter. Output priority:
utility first (the load from the grid), solar first (the load from PV, the rest from the grid),
SBU (PV, then the battery above its back-to-grid charge, then the grid). Charger priority says
who may charge the battery: PV only, PV first then the grid, both, or the grid first. With the
grid down (`grid_v = 0`) the battery carries the load whatever the priorities.

`Pi30Simulator` answers every query and setter on a line, with faults to inject: silence, a
bad CRC, NAK to everything, the port unplugged, and real 2400-baud timing (4.17 ms a byte).
"""
from __future__ import annotations

import argparse
import os
import select
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ..pi30 import codec
from .runner import open_pty

BYTE_TIME_S = 10 / 2400   # 8N1 at 2400 baud


@dataclass
class Pi30Model:
    capacity_wh: float = 5000.0
    soc_pct: float = 60.0
    back_to_grid_soc_pct: float = 20.0   # SBU falls back to the grid below this charge
    max_charge_w: float = 2500.0
    max_ac_charge_w: float = 1500.0
    grid_v: float = 230.0                # 0 = grid down
    output_priority: int = 2             # 0 utility, 1 solar, 2 SBU
    charger_priority: int = 3            # 0 utility, 1 solar, 2 solar + utility, 3 solar only
    pv_w: Callable[[float], float] = lambda t: 0.0
    load_w: Callable[[float], float] = lambda t: 500.0
    t_s: float = 0.0
    # What the last step did (W): + battery = charging.
    flows: dict = field(default_factory=lambda: {"pv": 0.0, "load": 0.0, "grid": 0.0,
                                                 "battery": 0.0})

    @property
    def battery_v(self) -> float:
        return 44.0 + 0.12 * self.soc_pct   # a 48 V lithium pack, 44 V empty, 56 V full

    def step(self, dt_s: float) -> None:
        self.t_s += dt_s
        pv, load = max(self.pv_w(self.t_s), 0.0), max(self.load_w(self.t_s), 0.0)
        grid_up = self.grid_v > 0
        full, above_cutoff = self.soc_pct >= 100.0, self.soc_pct > self.back_to_grid_soc_pct
        # The load: from the grid, PV or the battery by the output priority.
        if grid_up and self.output_priority == 0:
            from_pv, from_battery = 0.0, 0.0
        else:
            from_pv = min(pv, load)
            rest = load - from_pv
            battery_may = not grid_up or (self.output_priority == 2 and above_cutoff)
            from_battery = rest if battery_may and self.soc_pct > 0 else 0.0
        from_grid = load - from_pv - from_battery if grid_up else 0.0
        # The charger: PV left over, and the grid when the charger priority allows it.
        pv_charge = 0.0 if full else min(pv - from_pv, self.max_charge_w)
        ac_charge = 0.0
        if grid_up and not full and self.charger_priority != 3:
            if self.charger_priority in (0, 2) or (self.charger_priority == 1 and pv <= 0):
                ac_charge = min(self.max_ac_charge_w, self.max_charge_w - pv_charge)
        battery_w = pv_charge + ac_charge - from_battery
        # W x s / 3600 = Wh; / capacity x 100 = percent.
        self.soc_pct = min(100.0, max(0.0, self.soc_pct + battery_w * dt_s / 36 /
                                      self.capacity_wh))
        # The load served: with the grid down and the battery empty, nothing is.
        self.flows = {"pv": from_pv + pv_charge, "load": from_pv + from_battery + from_grid,
                      "grid": from_grid + ac_charge, "battery": battery_w}

    @property
    def mode(self) -> str:
        if self.grid_v > 0 and self.flows["grid"] > 0:
            return "L"
        return "B" if self.flows["load"] > 0 else "S"

    # ------------------------------------------------------------------ answers

    def qpigs(self) -> str:
        f, v = self.flows, self.battery_v
        charge_a = max(f["battery"], 0.0) / v
        discharge_a = max(-f["battery"], 0.0) / v
        pv_v = 120.0 if f["pv"] > 0 else 0.0
        status = "00010" + ("1" if f["battery"] > 0 else "0") + ("1" if f["pv"] > 0 else "0") \
            + ("1" if f["grid"] > f["load"] else "0")
        grid_hz = 50.0 if self.grid_v else 0.0
        return (f"{self.grid_v:05.1f} {grid_hz:04.1f} 230.0 50.0 {f['load']:04.0f} "
                f"{f['load']:04.0f} {min(f['load'] / 50, 999):03.0f} 400 {v:05.2f} "
                f"{charge_a:03.0f} {self.soc_pct:03.0f} 0035 {f['pv'] / 120 if pv_v else 0:04.1f} "
                f"{pv_v:05.1f} {v:05.2f} {discharge_a:05.0f} {status} 00 00 {f['pv']:05.0f} 010")

    def qpiri(self) -> str:
        return (f"230.0 21.7 230.0 50.0 21.7 5000 5000 48.0 46.0 44.0 56.4 54.0 2 30 060 0 "
                f"{self.output_priority} {self.charger_priority} 1 01 0 0 52.0 0 1")

    def qpiws(self) -> str:
        bits = ["0"] * 32
        if self.grid_v <= 0:
            bits[5] = "1"                       # line fail
        if self.soc_pct <= self.back_to_grid_soc_pct:
            bits[12] = "1"                      # battery low
        return "".join(bits)

    def answer(self, command: str) -> str:
        fixed = {"QPI": "PI30", "QID": "92932004102443", "QVFW": "VERFW:00072.70",
                 "QFLAG": "EakxyDbjuvz"}
        if command in fixed:
            return fixed[command]
        queries = {"QPIGS": self.qpigs, "QPIRI": self.qpiri, "QPIWS": self.qpiws,
                   "QMOD": lambda: self.mode}
        if command in queries:
            return queries[command]()
        for prefix, attribute, top in (("POP", "output_priority", 2),
                                       ("PCP", "charger_priority", 3)):
            value = command[len(prefix):]
            if command.startswith(prefix) and len(value) == 2 and value.isdigit():
                if int(value) > top:
                    return "NAK"
                setattr(self, attribute, int(value))
                return "ACK"
        return "NAK"


class Pi30Simulator:
    """Serves a `Pi30Model` on a file descriptor (a pty's master side or a serial port)."""

    def __init__(self, model: Pi30Model, fd: int | None = None, *, link: str | None = None,
                 baud_timing: bool = False, step_s: float = 1.0) -> None:
        """Serve on `fd`, or on a new pty with a symlink at `link` (which `unplug()` and
        `plug()` take away and bring back, as a USB adapter pulled out and put back)."""
        self.model = model
        self.link = link
        self._pty = open_pty(link) if fd is None else None
        self.fd: int | None = self._pty.master_fd if self._pty else fd
        self.baud_timing = baud_timing
        self.step_s = step_s
        self.silent = False         # faults a test may set at any time
        self.bad_crc = False
        self.nak_all = False
        self.nak_setters = False    # answers queries, refuses changes (e.g. a locked panel)
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pi30-sim", daemon=True)

    def start(self) -> Pi30Simulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.unplug()

    def unplug(self) -> None:
        """The adapter is pulled out: the port and its name disappear."""
        pty, self._pty = self._pty, None
        if pty is not None:
            self.fd = None
            pty.close()

    def plug(self) -> None:
        """Put back under the same name (a new pty, as a new ttyUSB device would be)."""
        if self._pty is None and self.link:
            self._pty = open_pty(self.link)
            self.fd = self._pty.master_fd

    def reply(self, line: bytes) -> bytes | None:
        """The frame for one request line (without its CR), or None for silence."""
        if len(line) < 3 or codec.crc_bytes(line[:-2]) != line[-2:]:
            return None if self.silent else b"(NAK" + codec.crc_bytes(b"(NAK") + b"\r"
        command = line[:-2].decode("ascii", "replace")
        with self._lock:
            self.requests.append(command)
            refused = self.nak_all or (self.nak_setters and not command.startswith("Q"))
            payload = "NAK" if refused else self.model.answer(command)
        if self.silent:
            return None
        body = b"(" + payload.encode()
        crc = codec.crc_bytes(body)
        if self.bad_crc:
            crc = bytes([crc[0] ^ 0x01, crc[1]])
        return body + crc + b"\r"

    def _run(self) -> None:
        buffer, next_step = b"", time.monotonic() + self.step_s
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_step:
                with self._lock:
                    self.model.step(self.step_s)
                next_step = now + self.step_s
            fd = self.fd
            try:
                if fd is None:
                    raise OSError("unplugged")
                ready = select.select([fd], [], [], min(0.1, max(next_step - now, 0)))[0]
                data = os.read(fd, 256) if ready else b""
            except (OSError, ValueError):
                self._stop.wait(0.1)   # unplugged, or the other side is not open (yet)
                continue
            buffer += data.replace(b"\0", b"")   # hidraw-style padding
            while b"\r" in buffer:
                line, _, buffer = buffer.partition(b"\r")
                frame = self.reply(line)
                if frame:
                    self._write(frame)

    def _write(self, frame: bytes) -> None:
        # With baud timing, byte by byte as a 2400-baud line delivers them (a pty has no baud).
        chunks = [frame[i:i + 1] for i in range(len(frame))] if self.baud_timing else [frame]
        for chunk in chunks:
            if self.baud_timing:
                time.sleep(BYTE_TIME_S)
            try:
                os.write(self.fd, chunk)
            except (OSError, TypeError):   # unplugged meanwhile
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m TWCManager.sim.pi30",
                                     description="A simulated PI30 battery inverter.")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal")
    where.add_argument("--port", help="serve on this serial port")
    parser.add_argument("--link", help="with --pty: a symlink to its slave side")
    parser.add_argument("--soc", type=float, default=60.0, help="battery charge, %%")
    parser.add_argument("--baud-timing", action="store_true", help="2400-baud byte timing")
    parser.add_argument("--peak-w", type=float, default=3000.0, help="PV peak, W")
    args = parser.parse_args(argv)
    from .inverter import SunCurve

    sun = SunCurve(peak_w=args.peak_w)
    start_h = time.localtime().tm_hour + time.localtime().tm_min / 60
    model = Pi30Model(soc_pct=args.soc, pv_w=lambda t: sun.solar_w(start_h + t / 3600),
                      load_w=lambda t: sun.house_w(start_h + t / 3600))
    if args.pty:
        simulator = Pi30Simulator(model, link=args.link, baud_timing=args.baud_timing)
        name = args.link or simulator._pty.slave_path
    else:
        import serial

        port = serial.Serial(args.port, 2400, timeout=0)
        simulator = Pi30Simulator(model, port.fileno(), baud_timing=args.baud_timing)
        name = args.port
    simulator.start()
    print(f"Simulated PI30 inverter on {name}; Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
