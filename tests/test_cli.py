"""`python -m TWCManager` as a user runs it: the demo, a bad configuration, flags."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from TWCManager.sim import Car, SimBus, SimulatedTWC, open_pty

from .util import free_ipc_dir, remove_queue_for, wait_until

ROOT = Path(__file__).resolve().parent.parent


class Output:
    """Collects a child's output in a thread, so waits can have deadlines."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc):
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)


def start(args, env=None):
    return subprocess.Popen([sys.executable, "-m", "TWCManager", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TWCMANAGER_CONFIG": str(ROOT / "etc" / "twcmanager.toml"),
                                 **(env or {})})


def stop(proc, timeout_s=10):
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_runs_the_daemon_against_a_simulated_twc_and_pi30():
    proc = start(["--demo"])
    out = Output(proc)
    try:
        assert wait_until(lambda: len([l for l in out.lines if ": SHB 032E: " in l]) >= 3,
                          timeout_s=20), out.text()
        # The second seed's inverter is polled too: its state reaches the web app's API.
        port = int(re.search(r"Web page: http://127.0.0.1:(\d+)/", out.text()).group(1))
        # The status through the IPC path the demo prints.
        ipc = re.search(r"ctl --ipc-path (\S+) status", out.text()).group(1)
        ctl = subprocess.run([sys.executable, "-m", "TWCManager.ctl", "--ipc-path", ipc,
                              "status"], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert ctl.returncode == 0 and ctl.stdout.startswith("Mode: "), ctl
        assert wait_until(lambda: (inverter_state(port) or {}).get("state") == "ok",
                          timeout_s=30), out.text()
        figures = inverter_state(port)
        assert figures["output_priority"] == "sbu" and 0 < figures["battery_soc_pct"] <= 100
    finally:
        code = stop(proc)
    text = out.text()
    assert code == 0, text
    assert "New slave 032E: protocol 2, rated 32.00 A" in text
    assert re.search(r"^\d\d:\d\d:\d\d: SHB 032E: 0[34] 00\.25/00\.00A 0000 0000  M: ", text, re.M)
    demo_dir = re.search(r"on (/\S+)/ttyTWC", text).group(1)
    assert not Path(demo_dir).exists()  # cleaned up
    assert "Traceback" not in text


def inverter_state(port: int) -> dict | None:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/getInverterStatus",
                                    timeout=3) as response:
            return json.load(response)
    except OSError:
        return None


def test_the_demo_names_the_urls_other_machines_can_open():
    from TWCManager.demo import reachable_urls

    assert reachable_urls("127.0.0.1", 8080) == ["http://127.0.0.1:8080/"]
    urls = reachable_urls("0.0.0.0", 8080)      # no socket is bound: names only
    assert urls[0] == "http://127.0.0.1:8080/"
    assert all(re.fullmatch(r"http://[\d.]+:8080/", url) for url in urls)


def test_host_without_demo_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "TWCManager", "--host", "0.0.0.0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "--host is for --demo" in proc.stderr


def test_min_above_wiring_is_refused_at_start(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[twc]\nwiring_max_amps_all_twcs = 16\nwiring_max_amps_per_twc = 16\n"
                      "min_amps_per_twc = 20\n")
    proc = subprocess.run([sys.executable, "-m", "TWCManager", "--config", str(config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "min_amps_per_twc" in proc.stderr and "20" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_command_line_overrides_reach_the_daemon(tmp_path):
    link = str(tmp_path / "ttyTWC")
    unit = SimulatedTWC(0x0451, 0x01, protocol=1, max_amps=80.0, car=Car("charging", 80.0))
    settings = tmp_path / "s.txt"
    settings.write_text("nonScheduledAmpsMax=0")
    config = tmp_path / "c.toml"
    config.write_text("[twc]\nserial_port = \"/dev/does-not-exist\"\n")
    ipc_dir = free_ipc_dir(tmp_path)
    with SimBus(open_pty(link), [unit]):
        proc = start(["--config", str(config), "--serial-port", link, "--settings-file",
                      str(settings), "--ipc-path", str(ipc_dir), "--log-level", "info"])
        out = Output(proc)
        try:
            assert wait_until(lambda: unit.heartbeats_received >= 3, timeout_s=15), out.text()
        finally:
            assert stop(proc) == 0
            remove_queue_for(ipc_dir)
    # 0 A with the protocol-1 limit command: the settings file was the one given
    assert unit.commands[-1][1] == bytes.fromhex("05000000000000")
    assert "Pool 0.00 A: do not charge" in out.text()


def test_unreachable_adapter_keeps_running_and_says_so(tmp_path):
    ipc_dir = free_ipc_dir(tmp_path)
    proc = start(["--serial-port", str(tmp_path / "nothing"), "--settings-file",
                  str(tmp_path / "s.txt"), "--ipc-path", str(ipc_dir)])
    out = Output(proc)
    try:
        assert wait_until(lambda: "cannot open" in out.text(), timeout_s=10), out.text()
        assert proc.poll() is None
    finally:
        assert stop(proc) == 0
        remove_queue_for(ipc_dir)


def test_help_lists_the_contract_flags():
    proc = subprocess.run([sys.executable, "-m", "TWCManager", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    for flag in ("--config", "--serial-port", "--ipc-path", "--settings-file",
                 "--green-command", "--demo"):
        assert flag in proc.stdout


def test_a_missing_serial_port_lists_the_ports_that_exist(tmp_path):
    ipc_dir = free_ipc_dir(tmp_path)
    proc = start(["--serial-port", str(tmp_path / "ttyNOPE"), "--settings-file",
                  str(tmp_path / "s.txt"), "--ipc-path", str(ipc_dir), "--log-level", "info"])
    out = Output(proc)
    try:
        assert wait_until(lambda: "cannot open" in out.text(), timeout_s=15), out.text()
    finally:
        stop(proc)
        remove_queue_for(ipc_dir)
    line = next(l for l in out.lines if "cannot open" in l)
    assert "ttyNOPE" in line and ("serial ports here: " in line
                                  or "no serial port is plugged in" in line), line


def test_a_busy_web_port_is_one_clear_line(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "c.toml"
        config.write_text(f'[ipc]\npath = "{tmp_path}"\n')
        proc = subprocess.run([sys.executable, "-m", "www", "--config", str(config),
                               "--host", "127.0.0.1", "--port", str(port)],
                              cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert f"www: cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_systemd_does_not_restart_a_configuration_error():
    for unit in ("twcmanager.service", "twcmanager-web.service"):
        text = (ROOT / "etc" / "systemd" / unit).read_text()
        assert "Restart=always" in text and "RestartPreventExitStatus=2" in text, unit
