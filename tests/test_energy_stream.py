"""The solaredge command kept running as the site meter (`StreamSource`): readings, a child
that hangs, dies or prints garbage is restarted, a failing stream never refreshes the reading,
stop() leaves no process; and which commands `make_meter` runs as a stream.

The misbehaving children are a small fake stream script whose behaviour a file in tmp_path
sets, request by request; one test runs the real `solaredge --stream` against the inverter
simulator. Every wait has a deadline; no assertion is on a duration.
"""
from __future__ import annotations

import logging
import sys
import textwrap
import time
from pathlib import Path

import pytest

from TWCManager.config import GreenConfig
from TWCManager.core.interfaces import FAILING, OK, STALE
from TWCManager.energy import make_meter
from TWCManager.energy.command import CommandSource
from TWCManager.energy.stream import StreamSource, stream_argv
from TWCManager.sim.inverter import InverterSimulator

from .util import wait_until

FAKE_STREAM = textwrap.dedent("""
    import json, os, sys, time
    state = sys.argv[1]
    with open(os.path.join(state, "pids"), "a") as f:
        f.write(f"{os.getpid()}\\n")
    for _request in sys.stdin:
        mode = open(os.path.join(state, "mode")).read().strip()
        if mode == "hang":
            time.sleep(120)
        elif mode == "die":
            sys.exit(3)
        elif mode == "last":
            print(json.dumps({"grid_w": 10}), flush=True)
            sys.exit(0)
        elif mode == "garbage":
            print("Traceback (most recent call last):", flush=True)
        elif mode == "error":
            print(json.dumps({"error": "Inverter unreachable", "detail": "sim: no route"}), flush=True)
        elif mode.startswith("twice "):
            watts = int(mode.split()[1])
            print(json.dumps({"grid_w": watts}), flush=True)
            print(json.dumps({"grid_w": watts + 1}), flush=True)
        else:
            print(json.dumps({"grid_w": int(mode), "solar_w": 4000, "house_w": 4000 - int(mode)}),
                  flush=True)
""")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Fake:
    """The fake stream script and the file that says what it does next."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.script = tmp_path / "fake_stream.py"
        self.script.write_text(FAKE_STREAM)
        self.set("1500")

    def set(self, mode: str) -> None:
        (self.dir / "mode").write_text(mode)

    @property
    def argv(self) -> list[str]:
        return [sys.executable, str(self.script), str(self.dir)]

    def pids(self) -> list[int]:
        path = self.dir / "pids"
        return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.fixture
def fake(tmp_path):
    return Fake(tmp_path)


def alive(pid: int) -> bool:
    """Running (a zombie counts as dead: it has been killed, only not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def source_for(fake: Fake, clock=None, **kw) -> StreamSource:
    kw.setdefault("timeout_s", 0.5)
    kw.setdefault("start_allowance_s", 10.0)
    return StreamSource(fake.argv, kw.pop("interval_s", 0.05), kw.pop("stale_after_s", 30),
                        clock=clock or FakeClock(), **kw)


@pytest.fixture
def sources():
    made: list[StreamSource] = []
    yield made
    for s in made:
        s.stop()


# ---- readings ----------------------------------------------------------------------------


def test_readings_come_from_one_child(fake, sources):
    s = source_for(fake)
    sources.append(s)
    for watts in ("1500", "-300", "0"):
        fake.set(watts)
        reading = s.read_once()
        assert (reading.grid_w, reading.solar_w, reading.house_w) == (
            int(watts), 4000, 4000 - int(watts))
    assert len(fake.pids()) == 1 and s.restarts == 0
    status = s.status(s._clock())
    assert status["state"] == OK and status["reads"] == 3 and status["failures"] == 0
    assert set(status) == {"state", "command", "last_reading_at", "last_error", "failing_since",
                           "reads", "failures"}   # the same keys as CommandSource's


def test_an_inverter_error_is_a_failure_but_the_child_stays(fake, sources):
    s = source_for(fake)
    sources.append(s)
    assert s.read_once().grid_w == 1500
    fake.set("error")
    assert s.read_once() is None
    assert s.status(s._clock())["last_error"] == "sim: no route"
    fake.set("700")
    assert s.read_once().grid_w == 700
    assert len(fake.pids()) == 1 and s.restarts == 0


# ---- restarts ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode, error", [
    ("hang", "no answer within 0.5 s"),
    ("die", "exited with status 3"),
    ("garbage", "unreadable answer"),
])
def test_a_hung_dead_or_garbled_child_is_replaced(fake, sources, mode, error):
    s = source_for(fake)
    sources.append(s)
    assert s.read_once().grid_w == 1500
    first = fake.pids()[0]
    fake.set(mode)
    assert s.read_once() is None
    status = s.status(s._clock())
    assert status["state"] == FAILING and error in status["last_error"]
    assert "restarting" in status["last_error"]
    assert not alive(first)          # killed and reaped, not left behind
    fake.set("900")
    # It had answered before: a fresh child at once, which answers.
    assert s.read_once().grid_w == 900
    assert s.status(s._clock())["state"] == OK
    assert len(fake.pids()) == 2 and s.restarts == 1


def test_a_child_that_died_between_two_requests_is_replaced(fake, sources):
    s = source_for(fake)
    sources.append(s)
    fake.set("last")                 # answers, then exits
    assert s.read_once().grid_w == 10
    assert wait_until(lambda: not alive(fake.pids()[0]), timeout_s=5)
    fake.set("1100")
    assert s.read_once() is None
    assert "exited with status 0" in s.last_error
    assert s.read_once().grid_w == 1100 and s.restarts == 1


def test_a_line_nobody_asked_for_is_not_taken_for_the_next_answer(fake, sources):
    s = source_for(fake)
    sources.append(s)
    fake.set("twice 1000")       # answers, then prints a second line unasked
    assert s.read_once().grid_w == 1000
    # The stray line has come (it may already sit in the source's buffer).
    assert wait_until(lambda: s._buffer or _pending(s), timeout_s=5)
    fake.set("1200")
    assert s.read_once() is None  # the stray 1001 is refused, the child replaced
    assert "nobody asked for" in s.last_error
    assert s.read_once().grid_w == 1200
    assert s.reads == 2 and s.restarts == 1


def _pending(s: StreamSource) -> bool:
    import select
    return bool(select.select([s._proc.stdout.fileno()], [], [], 0)[0])


def test_a_child_that_keeps_dying_is_restarted_after_a_pause_and_logged_once(fake, sources, caplog):
    fake.set("die")
    s = source_for(fake, interval_s=30)   # a pause of at least one interval after each death
    sources.append(s)
    with caplog.at_level(logging.DEBUG, logger="TWCManager.green"):
        assert s.read_once() is None
        assert len(fake.pids()) == 1
        for _ in range(3):
            assert s.read_once() is None     # still pausing: no new child
        assert len(fake.pids()) == 1
        s._spawn_not_before = 0.0            # the pause is over
        assert s.read_once() is None
        assert len(fake.pids()) == 2
        assert "restarting in 60 s" in s.last_error   # the pause doubles
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "exited with status 3" in errors[0].getMessage()
    assert s.failures == 2


def test_a_new_kind_of_problem_is_logged_again(fake, sources, caplog):
    s = source_for(fake)
    sources.append(s)
    with caplog.at_level(logging.ERROR, logger="TWCManager.green"):
        fake.set("error")
        for _ in range(3):
            assert s.read_once() is None
        fake.set("garbage")
        assert s.read_once() is None
        fake.set("1500")
        assert s.read_once().grid_w == 1500
        fake.set("error")
        assert s.read_once() is None
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(messages) == 3, messages
    assert "no route" in messages[0] and "unreadable" in messages[1] and "no route" in messages[2]


# ---- the fail-safe -----------------------------------------------------------------------


def test_a_failing_stream_never_refreshes_the_reading_so_it_goes_stale(fake, sources):
    clock = FakeClock()
    s = source_for(fake, clock=clock, stale_after_s=30)
    sources.append(s)
    assert s.read_once().grid_w == 1500
    good = s.latest()
    assert good.at == 100.0
    for mode in ("hang", "die", "garbage", "error", "hang"):
        fake.set(mode)
        clock.now += 10
        s._spawn_not_before = 0.0    # no pause between restarts here: each mode gets a child
        assert s.read_once() is None
        assert s.latest() is good
        age_s = clock.now - good.at
        assert s.status(clock.now)["state"] == (FAILING if age_s <= 30 else STALE), mode
    assert s.status(clock.now)["state"] == STALE and s.reads == 1


# ---- stop --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["1500", "hang"])
def test_stop_leaves_no_child(fake, mode):
    # The thread paces itself by the clock: a real one. A hung child is still being waited
    # for at stop().
    s = source_for(fake, clock=time.monotonic, timeout_s=60)
    fake.set(mode)
    s.start()
    try:
        assert wait_until(lambda: fake.pids() and s.last_attempt_at is not None, timeout_s=10)
        if mode != "hang":
            assert wait_until(lambda: s.reads >= 3, timeout_s=10)
    finally:
        s.stop()
    assert not s._thread.is_alive()
    assert fake.pids() and not any(alive(pid) for pid in fake.pids())
    assert s._proc is None


def test_thread_restarts_a_hung_child_by_itself(fake):
    s = source_for(fake, clock=time.monotonic, interval_s=0.05, start_allowance_s=0)
    fake.set("hang")
    s.start()
    try:
        assert wait_until(lambda: s.failures >= 1, timeout_s=20)
        fake.set("800")
        assert wait_until(lambda: s.latest() is not None and s.latest().grid_w == 800, timeout_s=20)
    finally:
        s.stop()
    assert len(fake.pids()) >= 2 and not any(alive(pid) for pid in fake.pids())


# ---- the real solaredge --stream ----------------------------------------------------------


def test_real_solaredge_stream_against_the_simulator(tmp_path):
    config = tmp_path / "twcmanager.toml"
    config.write_text('[solaredge]\nhost = "127.0.0.1"\ntimeout_s = 0.5\n')
    with InverterSimulator(solar_w=3000, grid_w=-500) as sim:
        argv = stream_argv(f"{sys.executable} -m TWCManager.solaredge --config {config} "
                           f"--port {sim.port} -grid")
        s = StreamSource(argv, 1.0, 30, clock=FakeClock())
        try:
            r = s.read_once()
            assert (r.grid_w, r.solar_w, r.house_w) == (-500, 3000, 3500)
            sim.set_power(grid_w=1200)
            assert s.read_once().grid_w == 1200
            sim.pause()                    # a hung inverter: the child answers with an error
            assert s.read_once() is None
            assert f"127.0.0.1:{sim.port}" in s.last_error   # the child's detail
            sim.resume()
            assert s.read_once().grid_w == 1200
            assert s.restarts == 0 and s.reads == 3
            pid = s.child_pid()
        finally:
            s.stop()
        assert not alive(pid)


# ---- which commands run as a stream ------------------------------------------------------


@pytest.mark.parametrize("command, expected", [
    ("/usr/local/bin/solaredge -grid", ["/usr/local/bin/solaredge", "--stream"]),
    ("solaredge --host 10.0.0.5 --port 502 --grid", None),   # resolved below
    (f"{sys.executable} -m TWCManager.solaredge --json",
     [sys.executable, "-m", "TWCManager.solaredge", "--stream"]),
    ("python3 -m TWCManager.solaredge --config /etc/x.toml -grid -v",
     ["python3", "-m", "TWCManager.solaredge", "--config", "/etc/x.toml", "--stream", "-v"]),
])
def test_solaredge_commands_that_read_the_grid_become_streams(command, expected):
    argv = stream_argv(command)
    if expected is None:   # `solaredge` found on PATH or run from the checkout
        assert argv[-5:] == ["--host", "10.0.0.5", "--port", "502", "--stream"]
    else:
        assert argv == expected


@pytest.mark.parametrize("command", [
    "solaredge -solar", "solaredge -house", "solaredge", "echo 1500", "cat /tmp/solaredge",
    f"{sys.executable} -c 'print(1)' -grid", "python3 -m TWCManager.replay --json",
    "solaredge 'unbalanced", "",
])
def test_other_commands_run_per_reading(command):
    assert stream_argv(command) is None


def test_make_meter_chooses():
    kw = {"clock": FakeClock(), "active": lambda: True}
    meter = make_meter(GreenConfig(), **kw)
    assert isinstance(meter, StreamSource) and meter.argv[-1] == "--stream"
    assert (meter.interval_s, meter.command) == (2.0, "solaredge -grid")
    assert meter.idle_interval_s == 60
    per_call = make_meter(GreenConfig(stream=False), **kw)
    assert type(per_call) is CommandSource and per_call.argv[-1] == "-grid"
    other = make_meter(GreenConfig(command="echo 1500"), **kw)
    assert type(other) is CommandSource
