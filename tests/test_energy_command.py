"""The energy command as the site meter: parsing its output, running it per reading with a
timeout, failing and going stale, reading less often when green tracking is not in use."""
from __future__ import annotations

import logging
import sys

import pytest

from TWCManager.core.interfaces import FAILING, OK, STALE
from TWCManager.energy.command import CommandSource, parse_output, resolve_command

from .util import wait_until


@pytest.mark.parametrize("text, expected", [
    ("1234\n", (1234.0, None, None)),
    ("-800", (-800.0, None, None)),
    ('{"grid_w": 1500, "solar_w": 4000, "house_w": 2500}', (1500.0, 4000.0, 2500.0)),
    ('{"grid_w": -20.5}', (-20.5, None, None)),
])
def test_parse_output(text, expected):
    assert parse_output(text) == expected


@pytest.mark.parametrize("text", ["", "Inverter unreachable", "12.5.3", '{"solar_w": 1}',
                                  '{"grid_w": true}', "{broken"])
def test_parse_output_refuses(text):
    with pytest.raises(ValueError):
        parse_output(text)


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_command_source_reads_and_fails_and_goes_stale(tmp_path):
    value = tmp_path / "watts"
    value.write_text("1500")
    clock = FakeClock()
    script = f"{sys.executable} -c \"import sys; t=open('{value}').read(); print(t) if t != 'x' " \
             f"else (print('Inverter unreachable'), sys.exit(255))\""
    source = CommandSource(script, interval_s=30, stale_after_s=120, clock=clock)
    assert source.read_once().grid_w == 1500
    assert source.status(clock.now)["state"] == OK
    value.write_text("x")
    assert source.read_once() is None
    status = source.status(clock.now)
    assert status["state"] == FAILING and "Inverter unreachable" in status["last_error"]
    clock.now += 121
    assert source.status(clock.now)["state"] == STALE
    value.write_text("-300")
    assert source.read_once().grid_w == -300
    assert source.status(clock.now)["state"] == OK


def test_hung_command_is_cut_at_its_timeout():
    source = CommandSource(f"{sys.executable} -c \"import time; time.sleep(30)\"",
                           interval_s=30, stale_after_s=120, timeout_s=0.5)
    assert source.read_once() is None
    assert "no answer within 0.5 s" in source.status(0)["last_error"]


def test_command_source_thread_runs_every_interval(tmp_path):
    source = CommandSource(f"{sys.executable} -c \"print(42)\"", interval_s=0.2, stale_after_s=5)
    source.start()
    try:
        assert wait_until(lambda: source.reads >= 3, timeout_s=10)
    finally:
        source.stop()
    assert source.latest().grid_w == 42


def test_solaredge_resolves_to_the_checkout_module_when_not_installed(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert resolve_command(["solaredge", "-grid"]) == [
        sys.executable, "-m", "TWCManager.solaredge", "-grid"]


def test_command_source_reads_less_often_when_green_is_not_in_use():
    active = {"green": False}
    source = CommandSource(f"{sys.executable} -c \"print(42)\"", interval_s=0.2,
                           stale_after_s=5, active=lambda: active["green"], idle_interval_s=30)
    source.start()
    try:
        assert wait_until(lambda: source.reads >= 1, timeout_s=10)
        reads = source.reads
        active["green"] = True  # green tracking selected: back to every interval_s
        assert wait_until(lambda: source.reads >= reads + 3, timeout_s=10)
        active["green"] = False
        settled = source.reads + 1  # the read under way may still finish
        assert not wait_until(lambda: source.reads > settled, timeout_s=1.5)
    finally:
        source.stop()


def test_a_failing_command_is_logged_once_until_it_answers_again(tmp_path, caplog):
    value = tmp_path / "watts"
    value.write_text("x")
    script = f"{sys.executable} -c \"print(open('{value}').read())\""
    source = CommandSource(script, interval_s=30, stale_after_s=120, clock=FakeClock())
    with caplog.at_level(logging.INFO, logger="TWCManager.green"):
        for _ in range(3):
            assert source.read_once() is None
        value.write_text("100")
        assert source.read_once().grid_w == 100
        value.write_text("y")
        assert source.read_once() is None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2 and source.failures == 4
    assert any("answers again" in r.getMessage() for r in caplog.records)
