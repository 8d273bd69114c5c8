"""End to end in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`,
driven by selenium) on the Boost/Eco dashboard of `python -m www`, which talks to a live
`python -m TWCManager` over the SysV queue, which drives a simulated TWC (protocol 2, 32 A,
car charging) on a pty in this process.

The scenario starts the way a user meets it: the daemon runs with no charger on the bus,
then the unit joins and charges at a fixed 16 A (the headline says "Mode: Fixed 16 A", and
that button of the mode selector is pressed) before anyone touches the page. That wait is the
daemon's 60 s start hold (the original's relay protection, not injectable into a subprocess),
so this test takes 80-90 s.
Then the selector's Boost raises the car's offer to the wiring maximum (32 A; the "why" line
says until when), Eco (sun) brings it back down (LennyBo's Eco sequence: the night schedule,
else green tracking, whose energy command here always fails, i.e. 0 A; both are below 32 A),
and once the daemon is stopped the page says TWCManager is not responding, with no figures.

The window is phone-sized (412 x 915 CSS px), and desktop-sized (1280 px) once: neither may
scroll sideways. Screenshots go to the pytest tmp dir and, if
$TWC_SCREENSHOT_DIR is set, there too. Every wait has a deadline, every process is
terminated and the queue is removed.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from TWCManager.core.settings import Settings

from TWCManager.settings_file import save_settings
from TWCManager.sim import Car, SimBus, SimulatedTWC, open_pty

from .util import remove_queue_for, wait_until

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIRING_MAX_AMPS = 32
ECO_AMPS = 16
PHONE = (412, 915)


def _missing() -> str | None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        return (f"{' and '.join(missing)} not installed (./test.sh installs Debian's chromium "
                f"and chromium-driver when run as root; otherwise: sudo apt-get install "
                f"chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it is in requirements-dev.txt)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


class Child:
    """A subprocess whose output is collected in a thread (so waits keep their deadlines)."""

    def __init__(self, name: str, args: list[str]):
        self.name = name
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return f"--- {self.name} output:\n" + "\n".join(self.lines[-60:])

    def stop(self, sig=signal.SIGINT, timeout_s: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)
        return self.proc.returncode


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def make_driver(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # Debian's build: selenium-manager downloads nothing
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 f"--window-size={PHONE[0]},{PHONE[1]}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(10)
    # --window-size is the outer window; make the page itself phone-sized.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": True})
    return driver


class Page:
    """Reads the dashboard with one script call, so a reload between two reads (a click on
    Boost navigates through TWCapi.php) never leaves a stale element behind."""

    def __init__(self, driver):
        self.driver = driver

    def state(self) -> dict | None:
        from selenium.common.exceptions import WebDriverException

        try:
            return self.driver.execute_script("""
                function el(id) {
                  var e = document.getElementById(id);
                  if (!e) return null;
                  return {text: e.textContent.trim(), shown: !e.hidden && e.offsetParent !== null};
                }
                var pressed = document.querySelector('#modes button[aria-pressed="true"]');
                return {mode: el('mode'), why: el('why'), available: el('available'),
                        pulling: el('pulling'), problem: el('problem'),
                        pressed: pressed ? pressed.value : null,
                        cards: document.querySelectorAll('#chargers .card').length,
                        scrollWidth: document.documentElement.scrollWidth,
                        innerWidth: window.innerWidth};""")
        except WebDriverException:
            return None

    def text(self, key: str) -> str | None:
        state = self.state()
        return state[key]["text"] if state and state.get(key) else None

    def amps(self, key: str) -> float | None:
        """The figure of `#available` / `#pulling` when it reads like "16.00 A", else None."""
        match = re.fullmatch(r"(\d+\.\d\d) A", self.text(key) or "")
        return float(match.group(1)) if match else None

    def problem(self) -> str:
        state = self.state()
        return state["problem"]["text"] if state and state["problem"]["shown"] else ""

    def shown(self, key: str) -> bool:
        state = self.state()
        return bool(state and state.get(key) and state[key]["shown"])

    def pressed(self) -> str | None:
        state = self.state()
        return state["pressed"] if state else None

    def width(self, width: int, height: int) -> None:
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})

    def click(self, element_id: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.ID, element_id).click()

    def screenshot(self, tmp_path: Path, name: str) -> Path:
        path = tmp_path / f"dashboard-{name}.png"
        assert self.driver.save_screenshot(str(path)), f"screenshot {name} failed"
        extra = os.environ.get("TWC_SCREENSHOT_DIR")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path

    def severe_console_errors(self) -> list[str]:
        entries = self.driver.get_log("browser")
        return [e["message"] for e in entries
                if e.get("level") == "SEVERE" and "favicon.ico" not in e.get("message", "")]


@pytest.mark.timeout(300)
def test_dashboard_boost_and_eco_in_chromium_against_a_live_daemon(tmp_path):
    ipc_dir = tmp_path / "ipc"
    ipc_dir.mkdir()
    link = str(tmp_path / "ttyTWC")
    settings_file = tmp_path / "settings.txt"
    save_settings(settings_file, Settings(non_scheduled_amps=ECO_AMPS))
    port = free_port()
    config = tmp_path / "twcmanager.toml"
    config.write_text(
        "[twc]\n"
        f'serial_port = "{link}"\n'
        f"wiring_max_amps_all_twcs = {WIRING_MAX_AMPS}\n"
        f"wiring_max_amps_per_twc = {WIRING_MAX_AMPS}\n"
        "min_amps_per_twc = 6\n"
        "reopen_interval_s = 0.5\n"
        # No energy source: green tracking (LennyBo's Eco by day) offers 0 A, deterministically.
        "[green]\n"
        'command = "false"\n'
        "[ipc]\n"
        f'path = "{ipc_dir}"\n'
        "[settings]\n"
        f'file = "{settings_file}"\n'
        "[web]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        "[log]\n"
        'level = "info"\n')
    unit = SimulatedTWC(0x032E, 0x01, protocol=2, max_amps=32.0,
                        car=Car("charging", car_max_amps=32.0))
    base = f"http://127.0.0.1:{port}"

    # The pty exists from here on; the simulated unit answers only once the bus is started.
    bus = SimBus(open_pty(link), [unit])
    daemon = web = driver = None
    try:
        daemon = Child("daemon", ["-m", "TWCManager", "--config", str(config),
                                  "--serial-port", link, "--settings-file", str(settings_file),
                                  "--ipc-path", str(ipc_dir)])
        web = Child("www", ["-m", "www", "--config", str(config), "--ipc-path", str(ipc_dir),
                            "--host", "127.0.0.1", "--port", str(port)])
        logs = lambda: daemon.text() + "\n" + web.text()  # noqa: E731
        assert wait_until(lambda: http_status(f"{base}/TWCapi.php?GetStatus=1") == 200,
                          timeout_s=30, interval_s=0.2), logs()

        driver = make_driver(tmp_path)
        page = Page(driver)
        driver.get(f"{base}/")

        # No unit on the bus yet: the page says so.
        assert wait_until(lambda: page.problem() == "No charger on the RS-485 bus",
                          timeout_s=10, interval_s=0.1), (page.state(), logs())
        page.screenshot(tmp_path, "no-charger")

        # The unit joins; after the 60 s start hold it charges at the fixed 16 A.
        bus.start()
        assert wait_until(lambda: page.problem() == "" and page.text("mode") == "Mode: Fixed 16 A",
                          timeout_s=10, interval_s=0.1), (page.state(), logs())
        assert page.pressed() == "fixed"
        assert wait_until(lambda: unit.limit_amps == ECO_AMPS and unit.actual_amps() > ECO_AMPS - 1,
                          timeout_s=100, interval_s=0.2), (unit.limit_amps, logs())
        assert wait_until(lambda: (page.amps("pulling") or 0) > ECO_AMPS - 1,
                          timeout_s=10, interval_s=0.1), (page.state(), logs())
        available = page.text("available")
        assert re.fullmatch(r"\d+\.\d\d A", available), available
        assert available == f"{ECO_AMPS}.00 A"
        assert page.state()["cards"] == 1
        page.screenshot(tmp_path, "fixed")

        # Boost: the mode line within 5 s, then the car is offered the wiring maximum.
        clicked = time.monotonic()  # the click returns once the redirected page has loaded
        page.click("mode-boost")
        assert wait_until(lambda: page.text("mode") == "Mode: Boost", timeout_s=5,
                          interval_s=0.05), (page.state(), logs())
        boost_s = time.monotonic() - clicked
        assert boost_s < 5, boost_s
        assert wait_until(lambda: unit.limit_amps == WIRING_MAX_AMPS, timeout_s=20,
                          interval_s=0.1), (unit.limit_amps, logs())
        assert wait_until(lambda: page.amps("available") == WIRING_MAX_AMPS
                          and (page.amps("pulling") or 0) > WIRING_MAX_AMPS - 1,
                          timeout_s=15, interval_s=0.1), (page.state(), logs())
        assert page.pressed() == "boost" and "Boost 32 A until" in page.text("why")
        state = page.state()
        assert state["scrollWidth"] <= state["innerWidth"], state  # no sideways scrolling
        page.screenshot(tmp_path, "boost")
        page.width(1280, 900)                                       # and on a desktop
        state = page.state()
        assert state["scrollWidth"] <= state["innerWidth"], state
        page.screenshot(tmp_path, "boost-desktop")
        page.width(*PHONE)

        # Eco: back to the Eco mode, and the offer falls back below the wiring maximum.
        clicked = time.monotonic()
        page.click("mode-eco-solar")
        assert wait_until(lambda: page.text("mode") == "Mode: Eco (sun)", timeout_s=5,
                          interval_s=0.05), (page.state(), logs())
        eco_s = time.monotonic() - clicked
        assert eco_s < 5, eco_s
        assert wait_until(lambda: unit.limit_amps < WIRING_MAX_AMPS, timeout_s=20,
                          interval_s=0.1), (unit.limit_amps, logs())
        assert page.pressed() == "eco-solar"
        assert page.severe_console_errors() == []
        print(f"\nMode Boost shown {boost_s:.2f} s after the click, Eco {eco_s:.2f} s; "
              f"Eco offer {unit.limit_amps:g} A")

        # The daemon stops: within the 2 s IPC timeout plus a 2 s poll the page says so.
        assert daemon.stop() == 0, logs()
        assert wait_until(lambda: page.problem() == "TWCManager not responding",
                          timeout_s=10, interval_s=0.1), (page.state(), logs())
        assert page.text("available") == "–" and page.text("pulling") == "–"  # no stale figures
        assert page.state()["cards"] == 0
        page.screenshot(tmp_path, "not-responding")
        assert "Traceback" not in logs(), logs()
    finally:
        if driver is not None:
            driver.quit()
        for child in (web, daemon):
            if child is not None:
                child.stop()
        bus.close()
        remove_queue_for(ipc_dir)
