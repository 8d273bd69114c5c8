"""install.sh staged with --dest (it touches nothing outside), twice; the staged
commands run; the units and scripts pass systemd-analyze and shellcheck when present."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def install(dest: Path, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "install.sh"), "--dest", str(dest), *args],
                          capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    dest = tmp_path_factory.mktemp("stage")
    first = install(dest, "--wiring-amps", "32")
    assert first.returncode == 0, first.stdout + first.stderr
    return dest


def tree(dest: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(dest.rglob("*")):
        if "venv" in path.parts or not path.is_file():
            continue
        files[str(path.relative_to(dest))] = path.read_bytes()
    return files


def test_staged_layout(staged):
    for rel in ("opt/twcmanager/TWCManager/daemon.py", "opt/twcmanager/www/__init__.py",
                "opt/twcmanager/venv/bin/python", "usr/local/bin/twcmanager",
                "usr/local/bin/solaredge", "usr/local/bin/pi30",
                "usr/local/bin/twcmanager-web",
                "usr/local/bin/twcmanager-ctl", "etc/twcmanager/twcmanager.toml",
                "etc/systemd/system/twcmanager.service",
                "etc/systemd/system/twcmanager-web.service",
                "etc/udev/rules.d/99-twcmanager.rules"):
        assert (staged / rel).exists(), rel
    assert (staged / "var/lib/twcmanager").is_dir() and (staged / "var/log/twcmanager").is_dir()
    config = (staged / "etc/twcmanager/twcmanager.toml").read_text()
    assert 'serial_port = "/dev/ttyTWC"' in config
    assert 'file = "/var/lib/twcmanager/TWCManagerSettings.txt"' in config
    rules = (staged / "etc/udev/rules.d/99-twcmanager.rules").read_text()
    assert 'SYMLINK+="ttyTWC"' in rules and 'MODE="0660"' in rules and "0777" not in rules
    assert 'ATTRS{idVendor}=="0665", ATTRS{idProduct}=="5161", SYMLINK+="hidPI30"' in rules
    unit = (staged / "etc/systemd/system/twcmanager.service").read_text()
    assert "Restart=always" in unit and "User=twcmanager" in unit
    web = (staged / "etc/systemd/system/twcmanager-web.service").read_text()
    assert "CAP_NET_BIND_SERVICE" in web and "User=twcmanager" in web


def test_staged_config_loads(staged):
    from TWCManager.config import load_config

    cfg = load_config(staged / "etc/twcmanager/twcmanager.toml")
    assert cfg.twc.serial_port == "/dev/ttyTWC" and cfg.web.port == 80
    # --wiring-amps set both limits (without it a first install would not start).
    assert (cfg.twc.wiring_max_amps_all_twcs, cfg.twc.wiring_max_amps_per_twc) == (32, 32)


def test_second_run_is_idempotent_and_keeps_the_config(staged):
    config = staged / "etc/twcmanager/twcmanager.toml"
    config.write_text(config.read_text().replace("wiring_max_amps_all_twcs = 32",
                                                 "wiring_max_amps_all_twcs = 12"))
    before = tree(staged)
    again = install(staged)
    assert again.returncode == 0, again.stderr
    assert "keeping the existing" in again.stdout
    assert tree(staged) == before


@pytest.mark.parametrize("command, expect", [
    (["usr/local/bin/twcmanager", "--help"], "--serial-port"),
    (["usr/local/bin/twcmanager-web", "--help"], "--port"),
    (["usr/local/bin/twcmanager-ctl", "--help"], "usage"),
    (["usr/local/bin/solaredge", "-h"], "-grid"),
    (["usr/local/bin/pi30", "--help"], "charger-priority"),
])
def test_staged_commands_run(staged, command, expect, tmp_path):
    # From another directory, so nothing comes from the checkout by accident.
    done = subprocess.run([str(staged / command[0]), *command[1:]], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout


def test_screen_boot_adds_one_rc_local_block(tmp_path):
    dest = tmp_path / "stage"
    for _ in range(2):
        done = install(dest, "--boot", "screen")
        assert done.returncode == 0, done.stderr
    rc_local = (dest / "etc/rc.local").read_text()
    assert rc_local.count("screen -dmS TWCManager") == 1
    assert rc_local.index("BEGIN twcmanager") < rc_local.index("exit 0")
    assert "su -s /bin/sh twcmanager" in rc_local  # as the service user, not root
    assert (dest / "usr/local/bin/twcmanager-screen").exists()
    assert not (dest / "etc/systemd/system/twcmanager.service").exists()
    # and uninstall takes it all away again, keeping config and settings
    done = install(dest, "--uninstall")
    assert done.returncode == 0, done.stderr
    assert "BEGIN twcmanager" not in (dest / "etc/rc.local").read_text()
    assert not (dest / "opt/twcmanager").exists()
    assert not (dest / "usr/local/bin/twcmanager").exists()
    assert (dest / "etc/twcmanager/twcmanager.toml").exists()


def test_refuses_bad_options_and_non_root(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "install.sh"), "--boot", "upstart"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "--boot must be" in done.stderr
    for amps in ("5", "81", "16A", "-3"):
        done = install(tmp_path / "x", "--wiring-amps", amps, timeout_s=30)
        assert done.returncode != 0 and "--wiring-amps must be" in done.stderr, amps
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
               "bash", str(ROOT / "install.sh")]
    else:
        cmd = ["bash", str(ROOT / "install.sh")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "run as root" in done.stderr


def test_old_python_is_refused(tmp_path):
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'Python 3.9.2' && exit 0\nexit 1\n")
    fake.chmod(0o755)
    done = subprocess.run(["bash", str(ROOT / "install.sh"), "--dest", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHON": str(fake)})
    assert done.returncode != 0 and "3.11 or newer" in done.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(staged):
    units = staged / "etc/systemd/system"
    done = subprocess.run(["systemd-analyze", "verify", "twcmanager.service",
                           "twcmanager-web.service"], cwd=units, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck not installed (apt-get install shellcheck)")
def test_scripts_pass_shellcheck():
    done = subprocess.run(["shellcheck", "install.sh", "test.sh", "demo.sh",
                           "scripts/bootstrap.sh", "etc/twcmanager-screen.sh", ".ci/run"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout


def test_a_failing_package_step_says_so(tmp_path):
    # PIP_NO_INDEX: pip may not look anything up, so the pinned packages cannot install
    # (nothing leaves the machine).
    done = subprocess.run(["bash", str(ROOT / "install.sh"), "--dest", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""})
    assert done.returncode != 0
    assert "pip install failed" in done.stderr
    # and nothing was marked as installed: the next run tries again
    assert not (tmp_path / "d/opt/twcmanager/venv/.requirements.sha256").exists()
