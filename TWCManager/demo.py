"""`python -m TWCManager --demo`: the whole system on simulated hardware.

Both seeds' homes in one: a simulated Wall Connector (protocol 2, 32 A) with a car that wants
to charge on a pseudo-terminal, a simulated SolarEdge inverter (a real Modbus TCP server on
127.0.0.1) under a late-morning sun curve, the real `solaredge` command reading it, the daemon
tracking green energy; and the second seed's PI30 battery inverter (5 kWh, 3 kWp of its own
panels, part of the house on its output) on another pseudo-terminal, polled by the daemon. The
web pages on http://127.0.0.1:8080/ show both.
"""
from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from .ipc.wire import ipc_key, remove_queue
from .core.settings import Settings
from .settings_file import save_settings

log = logging.getLogger("TWCManager.demo")

WEB_PORT = 8080
SUN_START_H = 11.0  # the simulated day starts late morning, whatever the real time
PI30_SOC_PCT = 55.0
PI30_PEAK_W = 3000.0
PI30_INTERVAL_S = 5.0   # the demo's inverter panel moves faster than the default 10 s


def _free_port(preferred: int, host: str = "127.0.0.1") -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind((host if host not in ("", "::") else "0.0.0.0", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free TCP port on 127.0.0.1")


def reachable_urls(host: str, port: int) -> list[str]:
    """The page's URLs: on 127.0.0.1 only that; on 0.0.0.0 (all addresses) also this
    machine's own addresses, as another machine would type them."""
    if host not in ("0.0.0.0", "::", ""):
        return [f"http://{host}:{port}/"]
    addresses = set()
    try:
        addresses.update(a for a in socket.gethostbyname_ex(socket.gethostname())[2]
                         if not a.startswith("127."))
    except OSError:
        pass
    try:   # the address of the default route; a UDP "connect" sends nothing
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            addresses.add(probe.getsockname()[0])
    except OSError:
        pass
    return [f"http://127.0.0.1:{port}/"] + [f"http://{a}:{port}/" for a in sorted(addresses)]


class Demo:
    def __init__(self, host: str = "127.0.0.1") -> None:
        from .sim.inverter import InverterSimulator

        self.host = host
        self.dir = Path(tempfile.mkdtemp(prefix="twcmanager-demo-"))
        self.link = self.dir / "ttyTWC"
        self.pi30_link = self.dir / "ttyPI30"
        self.pi30 = None
        self.inverter = InverterSimulator(solar_w=0, grid_w=0).start()
        self.web_port = _free_port(WEB_PORT, host)
        self.bus = None
        self.sun = None
        self.web: subprocess.Popen | None = None

    def overrides(self) -> dict:
        return {
            "twc.serial_port": str(self.link), "ipc.path": str(self.dir),
            "settings.file": str(self.dir / "TWCManagerSettings.txt"),
            "green.command": (f"{sys.executable} -m TWCManager.solaredge --host 127.0.0.1 "
                              f"--port {self.inverter.port} --json"),
            # Green tracking all day long in the demo: the simulated sun has its own clock.
            "green.start_hour": 0, "green.end_hour": 24,
            "web.host": self.host, "web.port": self.web_port,
            "pi30.port": str(self.pi30_link), "pi30.interval_s": PI30_INTERVAL_S,
        }

    def start(self, cfg) -> None:
        from .sim import Car, SimBus, SimulatedTWC, open_pty
        from .sim.inverter import SunCurve, SunRunner

        save_settings(cfg.settings.file, Settings(non_scheduled_amps=-1))  # Eco: track green
        unit = SimulatedTWC(0x032E, 0x01, protocol=2, max_amps=32.0,
                            car=Car(mode="charging", car_max_amps=32.0))
        self.bus = SimBus(open_pty(str(self.link)), [unit])
        self.bus.start()
        watts_per_amp = cfg.green.watts_per_amp
        # The meter sees the car's draw, as a real one would.
        self.sun = SunRunner(self.inverter, SunCurve(peak_w=9000, seed=7), start_h=SUN_START_H,
                             load_w=lambda: unit.car.amps * watts_per_amp)
        self.sun.start()
        self.pi30 = _start_pi30(self.pi30_link)
        self.web = subprocess.Popen(
            [sys.executable, "-m", "www", "--ipc-path", str(self.dir), "--host", self.host,
             "--port", str(self.web_port)] + (["--config", str(cfg.source)] if cfg.source else []),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log.info("Demo: simulated TWC 032E (protocol 2, 32 A) with a car on %s; simulated "
                 "SolarEdge inverter on 127.0.0.1:%d (9 kWp, sun from %02d:00); tracking green "
                 "energy; simulated PI30 battery inverter (5 kWh at %.0f %%, SBU) on %s. "
                 "Web page: %s . The car starts once the surplus has "
                 "lasted the start delay and the 60 s start hold has passed. Ctrl-C stops.",
                 self.link, self.inverter.port, int(SUN_START_H), PI30_SOC_PCT, self.pi30_link,
                 " or ".join(reachable_urls(self.host, self.web_port)))
        log.info("Demo: its IPC queue is the ftok of %s: python -m TWCManager.ctl --ipc-path %s "
                 "status", self.dir, self.dir)

    def close(self) -> None:
        if self.web is not None and self.web.poll() is None:
            self.web.terminate()
            try:
                self.web.wait(5)
            except subprocess.TimeoutExpired:
                self.web.kill()
        if self.sun is not None:
            self.sun.stop()
        if self.pi30 is not None:
            self.pi30.stop()
        self.inverter.stop()
        if self.bus is not None:
            self.bus.close()
        remove_queue(ipc_key(str(self.dir)))  # the demo's private queue goes with its directory
        shutil.rmtree(self.dir, ignore_errors=True)



def _start_pi30(link: Path):
    """The second seed's inverter: its own panels and the part of the house on its output,
    on the demo's day clock (starting late morning, like the SolarEdge sun)."""
    from .sim.inverter import SunCurve
    from .sim.pi30 import Pi30Model, Pi30Simulator

    sun = SunCurve(peak_w=PI30_PEAK_W, house_base_w=250.0, seed=11)
    model = Pi30Model(soc_pct=PI30_SOC_PCT,
                      pv_w=lambda t: sun.solar_w(SUN_START_H + t / 3600),
                      load_w=lambda t: sun.house_w(SUN_START_H + t / 3600))
    model.step(1.0)
    return Pi30Simulator(model, link=str(link)).start()
