"""What the daemon costs while it runs: CPU seconds per minute and peak RSS.

Runs the real daemon (`python -m TWCManager`, log level "info") as a separate process
against one simulated TWC (protocol 2, 32 A) on a pseudo-terminal, in two scenarios one
after the other:

  idle      the unit has no car (Car mode "unplugged")
  charging  a car charging at 16 A (non-scheduled amps 16), measured only once the unit
            reports more than 10 A drawn, i.e. after the daemon's 60 s start hold
  green     green tracking (non-scheduled amps -1) with the meter read every 2 s: the
            default `solaredge -grid`, kept running as `solaredge --stream`, against the
            inverter simulator (Modbus TCP on 127.0.0.1) exporting 12 kW less what the car
            draws; measured once the car charges above 10 A
  percall   (only when asked for) the same with `[green] stream = false`: a Python process
            per reading, what the stream saves

CPU time is utime+stime from /proc/<pid>/stat over the measurement window, normalised to
CPU-seconds per minute; peak RSS is VmHWM from /proc/<pid>/status. The children's CPU (the
energy command) is counted apart and in the total: the daemon's cutime+cstime (children it
has reaped) plus what its live children (the stream) have used, read from their /proc/<pid>/stat. The heartbeats the unit
received in the window are counted as a sanity check (the daemon sends about one a second).
The figures are compared with the original TWCManager (25 ms polling loop) and with the aims.

Then `solaredge -grid` as a single call against the simulator: its wall time against a bare
`python -c "import solaredge_modbus"`, the median of --runs runs each, run alternately, with
the bytecode cached in a temporary PYTHONPYCACHEPREFIX (as an installed system has it; this
shell may set PYTHONDONTWRITEBYTECODE, which would compile our modules at every run but not
the libraries').

A bench prints figures, it asserts nothing: exit 0, or 1 if the daemon does not start.

    .venv/bin/python bench/idle_cost.py [--seconds 60] [--scenarios idle,charging,green] [--runs 11]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from TWCManager.sim import Car, SimBus, SimulatedTWC, open_pty  # noqa: E402
from TWCManager.core.settings import Settings  # noqa: E402
from TWCManager.settings_file import save_settings

# The original TWCManager on this kind of machine (its loop polls the port every 25 ms).
ORIGINAL_CPU_S_PER_MIN = 0.46
ORIGINAL_RSS_MB = 19.0
# What the port aims for.
AIM_CPU_S_PER_MIN = 0.09
AIM_RSS_MB = 25.0
# Green tracking with a 2 s meter: the daemon and the energy command together.
AIM_GREEN_TOTAL_CPU_S_PER_MIN = 0.15
# A single `solaredge -grid` against a bare `import solaredge_modbus`, wall time.
AIM_SINGLE_CALL_RATIO = 1.3

GREEN_INTERVAL_S = 2
GREEN_SURPLUS_W = 12_000.0    # export before the car: more than 16 A (16 x 690 = 11 kW)
HOUSE_W = 500.0
WATTS_PER_AMP = 690.0         # 230 V x 3 phases, the default

CHARGE_AMPS = 16
# The unit counts as charging once it reports more than this many amps drawn.
CHARGING_ABOVE_AMPS = 10.0

# Deadlines (seconds).
FIRST_HEARTBEAT_DEADLINE_S = 30.0     # daemon start-up: import, open the pty, linkready, heartbeat
IDLE_SETTLE_S = 5.0                   # after the first heartbeat, before the idle window
CHARGING_DEADLINE_S = 120.0           # 60 s start hold + car ramp, with a wide margin
TERM_DEADLINE_S = 5.0                 # SIGTERM, then SIGKILL
KILL_DEADLINE_S = 5.0
POLL_S = 0.2                          # how often the bench itself looks at the sim / the daemon

CLK_TCK = os.sysconf("SC_CLK_TCK")

# The benches' daemon config (ipc_latency and command_latency use it too).
CONFIG_TOML = """\
# Written by bench/{bench}: only what the bench needs, the rest are the defaults.
[twc]
serial_port = "{port}"
wiring_max_amps_all_twcs = {wiring_all}
wiring_max_amps_per_twc = {wiring_per}
min_amps_per_twc = {min_amps}

[ipc]
path = "{ipc}"

[settings]
file = "{settings}"

[log]
file = ""
level = "info"
"""


class DaemonFailed(Exception):
    """The daemon did not start, or died during a scenario."""

    def __init__(self, message: str, log_path: Path | None) -> None:
        super().__init__(message)
        self.log_path = log_path


@dataclass
class Result:
    scenario: str
    window_s: float
    cpu_s_per_min: float
    peak_rss_mb: float
    heartbeats_per_min: float
    log_lines_per_min: float
    threads: int
    warmup_s: float
    sched_cpu_s_per_min: float | None
    children_cpu_s_per_min: float = 0.0
    children: int = 0


# ---- /proc ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # The command name (field 2) may contain spaces; the fields after it start past ')'.
    fields = text[text.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])   # fields 14 and 15 of proc(5)
    return (utime + stime) / CLK_TCK


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # The command name (field 2) may contain spaces; the fields after it start past ')'.
    return text[text.rindex(")") + 2:].split()


def children_cpu_seconds(pid: int) -> float:
    """CPU of the daemon's children (the energy command), in seconds: cutime + cstime of the
    daemon (children it has reaped) plus utime + stime + cutime + cstime of each child still
    running (the stream; a child reaped between two calls moves from the second to the first
    part, so a difference of two calls counts it once)."""
    fields = _stat_fields(pid)
    total = int(fields[13]) + int(fields[14])   # fields 16 and 17 of proc(5)
    for child in live_children(pid):
        try:
            f = _stat_fields(child)
        except (OSError, ValueError):
            continue   # it has just gone: now in the daemon's cutime
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / CLK_TCK


def live_children(pid: int) -> list[int]:
    """The processes whose parent is pid, from /proc/<pid>/stat field 4."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if int(_stat_fields(int(name))[1]) == pid:
                    found.append(int(name))
            except (OSError, ValueError, IndexError):
                pass
    return found


def sched_cpu_seconds(pid: int) -> float | None:
    """On-CPU time summed over the live threads from schedstat (ns resolution), or None."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


def status_field(pid: int, name: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    raise KeyError(name)


def peak_rss_mb(pid: int) -> float:
    kb = int(status_field(pid, "VmHWM").split()[0])
    return kb / 1024


# ---- one scenario --------------------------------------------------------------------------


class Scenario:
    """A temp dir, a simulated unit on a pty, and the daemon as a child process."""

    def __init__(self, name: str, car_mode: str) -> None:
        self.name = name
        self.car_mode = car_mode
        self.children_seen = 0   # live children of the daemon at the end of the window
        self.dir = Path(tempfile.mkdtemp(prefix=f"twc-bench-{name}-"))
        self.log_path = self.dir / "daemon.out"
        self.unit: SimulatedTWC | None = None
        self.bus: SimBus | None = None
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    # -- set-up / tear-down --

    def start(self) -> None:
        link = self.dir / "ttyTWC"
        settings_file = self.dir / "TWCManagerSettings.txt"
        config = self.dir / "twcmanager.toml"
        config.write_text(CONFIG_TOML.format(
            bench="idle_cost.py", port=link, ipc=self.dir, settings=settings_file,
            wiring_all=16, wiring_per=16, min_amps=6) + self.extra_config())
        save_settings(settings_file, Settings(non_scheduled_amps=self.non_scheduled_amps()))

        self.unit = SimulatedTWC(0x032E, 0x01, protocol=2, max_amps=32.0,
                                 car=Car(mode=self.car_mode, car_max_amps=32.0))
        self.bus = SimBus(open_pty(str(link)), [self.unit])
        self.bus.start()

        self._log_file = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("TWCMANAGER_CONFIG", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "TWCManager", "--config", str(config),
             "--serial-port", str(link), "--settings-file", str(settings_file),
             "--ipc-path", str(self.dir), "--log-level", "info"],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT)

    # Hooks for GreenScenario.
    def extra_config(self) -> str:
        return ""

    def non_scheduled_amps(self) -> int:
        return CHARGE_AMPS

    def on_poll(self) -> None:
        """Called every POLL_S (at most every second) while the bench waits."""

    def close(self) -> None:
        try:
            self._stop_daemon()
        finally:
            if self.bus is not None:
                self.bus.close()
                self.bus = None
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def remove_dir(self) -> None:
        # The daemon never removes its queue (like the original): the bench does.
        from TWCManager.ipc.wire import ipc_key, remove_queue

        remove_queue(ipc_key(str(self.dir)))
        shutil.rmtree(self.dir, ignore_errors=True)

    def _stop_daemon(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(TERM_DEADLINE_S)
            return
        except subprocess.TimeoutExpired:
            print(f"  [{self.name}] daemon ignored SIGTERM for {TERM_DEADLINE_S:.0f} s; SIGKILL",
                  file=sys.stderr)
        proc.kill()
        try:
            proc.wait(KILL_DEADLINE_S)
        except subprocess.TimeoutExpired:
            print(f"  [{self.name}] daemon {proc.pid} still alive after SIGKILL", file=sys.stderr)

    # -- waits --

    def _check_alive(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            raise DaemonFailed(f"daemon exited with code {code}", self.log_path)

    def wait_until(self, what: str, predicate, deadline_s: float) -> float:
        """Wait for predicate() with a deadline; returns the seconds it took."""
        start = time.monotonic()
        while True:
            self._check_alive()
            self.on_poll()
            if predicate():
                return time.monotonic() - start
            if time.monotonic() - start > deadline_s:
                raise DaemonFailed(f"no {what} within {deadline_s:.0f} s", self.log_path)
            time.sleep(POLL_S)

    def sleep_alive(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._check_alive()
            self.on_poll()
            time.sleep(min(left, 1.0))
        self._check_alive()

    # -- the run --

    def run(self, seconds: float) -> Result:
        assert self.unit is not None and self.proc is not None
        unit = self.unit
        started = time.monotonic()
        self.wait_until("heartbeat from the daemon",
                        lambda: unit.heartbeats_received > 0, FIRST_HEARTBEAT_DEADLINE_S)
        if self.car_mode == "charging":
            self.wait_until(f"charging above {CHARGING_ABOVE_AMPS:.0f} A",
                            lambda: unit.actual_amps() > CHARGING_ABOVE_AMPS,
                            CHARGING_DEADLINE_S)
        else:
            self.sleep_alive(IDLE_SETTLE_S)
        warmup_s = time.monotonic() - started

        pid = self.proc.pid
        lines0 = count_lines(self.log_path)
        hb0 = unit.heartbeats_received
        sched0 = sched_cpu_seconds(pid)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        child0 = children_cpu_seconds(pid)
        self.sleep_alive(seconds)
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        child1 = children_cpu_seconds(pid)
        sched1 = sched_cpu_seconds(pid)
        hb1 = unit.heartbeats_received
        self.children_seen = len(live_children(pid))
        rss = peak_rss_mb(pid)
        threads = int(status_field(pid, "Threads"))
        lines1 = count_lines(self.log_path)

        if self.car_mode == "charging" and unit.actual_amps() <= CHARGING_ABOVE_AMPS:
            print(f"  [{self.name}] note: the unit stopped charging during the window "
                  f"({unit.actual_amps():.2f} A at its end)", file=sys.stderr)

        window = t1 - t0
        per_min = 60.0 / window
        sched = (sched1 - sched0) * per_min if sched0 is not None and sched1 is not None else None
        return Result(self.name, window, (cpu1 - cpu0) * per_min, rss, (hb1 - hb0) * per_min,
                      (lines1 - lines0) * per_min, threads, warmup_s, sched,
                      (child1 - child0) * per_min, self.children_seen)


class GreenScenario(Scenario):
    """Green tracking against the inverter simulator: the meter follows what the car draws."""

    def __init__(self, name: str, stream: bool) -> None:
        super().__init__(name, "charging")
        self.stream = stream
        self.inverter = None

    def start(self) -> None:
        from TWCManager.sim.inverter import InverterSimulator

        self.inverter = InverterSimulator(solar_w=GREEN_SURPLUS_W + HOUSE_W,
                                          grid_w=GREEN_SURPLUS_W).start()
        super().start()

    def extra_config(self) -> str:
        # The shipped default command, pointed at the simulator.
        command = f"solaredge --host 127.0.0.1 --port {self.inverter.port} -grid"
        return (f'\n[green]\ncommand = "{command}"\ninterval_s = {GREEN_INTERVAL_S}\n'
                f"stream = {'true' if self.stream else 'false'}\nstart_hour = 0\nend_hour = 24\n")

    def non_scheduled_amps(self) -> int:
        return -1   # track green energy

    def on_poll(self) -> None:
        car_w = self.unit.actual_amps() * WATTS_PER_AMP if self.unit is not None else 0.0
        self.inverter.set_power(grid_w=GREEN_SURPLUS_W - car_w)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.inverter is not None:
                self.inverter.stop()


# ---- one solaredge call --------------------------------------------------------------------


@dataclass
class SingleCall:
    runs: int
    import_s: float      # python -c "import solaredge_modbus"
    call_s: float        # python -m TWCManager.solaredge ... -grid
    bare_s: float        # python -c pass
    output: str


def single_call_figures(runs: int) -> SingleCall:
    """Median wall times of a bare import and of `solaredge -grid` against the simulator."""
    import statistics

    from TWCManager.sim.inverter import InverterSimulator

    cache = tempfile.mkdtemp(prefix="twc-bench-pycache-")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "TWCMANAGER_CONFIG")}
    env["PYTHONPYCACHEPREFIX"] = cache
    try:
        with InverterSimulator(solar_w=3000, grid_w=-500) as sim:
            commands = {
                "import": [sys.executable, "-c", "import solaredge_modbus"],
                "call": [sys.executable, "-m", "TWCManager.solaredge", "--host", "127.0.0.1",
                         "--port", str(sim.port), "-grid"],
                "bare": [sys.executable, "-c", "pass"],
            }
            times: dict[str, list[float]] = {k: [] for k in commands}
            output = ""
            for i in range(runs + 1):   # run 0 writes the bytecode cache; not counted
                for key, argv in commands.items():
                    started = time.perf_counter()
                    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True,
                                          text=True, timeout=30)
                    if i:
                        times[key].append(time.perf_counter() - started)
                    if key == "call":
                        output = done.stdout.strip() or done.stderr.strip()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    return SingleCall(runs, median["import"], median["call"], median["bare"], output)


def print_single_call(r: SingleCall) -> None:
    ratio = r.call_s / r.import_s
    print()
    print(f"solaredge -grid as a single call, wall time, median of {r.runs} runs each "
          f"(bytecode cached):")
    print(f"  python -c 'import solaredge_modbus'        {r.import_s * 1000:7.1f} ms")
    print(f"  python -m TWCManager.solaredge ... -grid   {r.call_s * 1000:7.1f} ms   "
          f"{ratio:.2f}x the import (aim <= {AIM_SINGLE_CALL_RATIO}x, "
          f"{verdict(ratio, AIM_SINGLE_CALL_RATIO)}); printed {r.output!r}")
    print(f"  python -c pass                             {r.bare_s * 1000:7.1f} ms")


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def tail(path: Path | None, lines: int = 40) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


# ---- report --------------------------------------------------------------------------------


def verdict(value: float, aim: float) -> str:
    return "within aim" if value <= aim else "OVER aim"


def print_table(results: list[Result], seconds: float) -> None:
    print()
    print(f"Daemon cost, one simulated TWC, {seconds:g} s window per scenario "
          f"(original: {ORIGINAL_CPU_S_PER_MIN} CPU-s/min, {ORIGINAL_RSS_MB:g} MB; "
          f"aims: <= {AIM_CPU_S_PER_MIN} CPU-s/min, <= {AIM_RSS_MB:g} MB)")
    head = (f"{'scenario':<9} {'CPU s/min':>9} {'x orig':>7} {'x aim':>6} {'CPU':<10} "
            f"{'RSS MB':>7} {'x orig':>7} {'x aim':>6} {'RSS':<10} {'HB/min':>7} "
            f"{'child s/min':>11} {'total s/min':>11}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r.scenario:<9} {r.cpu_s_per_min:>9.3f} "
              f"{r.cpu_s_per_min / ORIGINAL_CPU_S_PER_MIN:>7.2f} "
              f"{r.cpu_s_per_min / AIM_CPU_S_PER_MIN:>6.2f} "
              f"{verdict(r.cpu_s_per_min, AIM_CPU_S_PER_MIN):<10} "
              f"{r.peak_rss_mb:>7.1f} {r.peak_rss_mb / ORIGINAL_RSS_MB:>7.2f} "
              f"{r.peak_rss_mb / AIM_RSS_MB:>6.2f} {verdict(r.peak_rss_mb, AIM_RSS_MB):<10} "
              f"{r.heartbeats_per_min:>7.1f} {r.children_cpu_s_per_min:>11.3f} "
              f"{r.cpu_s_per_min + r.children_cpu_s_per_min:>11.3f}")
    print()
    tick = 1.0 / CLK_TCK
    for r in results:
        sched = f"{r.sched_cpu_s_per_min:.3f}" if r.sched_cpu_s_per_min is not None else "n/a"
        print(f"  {r.scenario}: window {r.window_s:.1f} s after {r.warmup_s:.1f} s warm-up; "
              f"{r.threads} threads; {r.log_lines_per_min:.1f} console lines/min; "
              f"schedstat cross-check {sched} CPU-s/min; {r.children} live child(ren) at "
              f"the end")
    for r in results:
        if r.scenario in ("green", "percall"):
            total = r.cpu_s_per_min + r.children_cpu_s_per_min
            print(f"  {r.scenario}: daemon + energy command {total:.3f} CPU-s/min = "
                  f"{total / AIM_GREEN_TOTAL_CPU_S_PER_MIN:.2f}x the aim of "
                  f"{AIM_GREEN_TOTAL_CPU_S_PER_MIN} ({verdict(total, AIM_GREEN_TOTAL_CPU_S_PER_MIN)}), "
                  f"meter read every {GREEN_INTERVAL_S} s")
    if results:
        grain = tick * 60.0 / results[0].window_s
        print(f"  /proc/<pid>/stat counts in {tick * 1000:.0f} ms ticks: "
              f"+-{grain:.3f} CPU-s/min at this window length.")


# ---- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="measurement window per scenario, in seconds (default 60)")
    parser.add_argument("--scenarios", default="idle,charging,green",
                        help="comma-separated, among " + ", ".join(SCENARIOS)
                             + " (default idle,charging,green)")
    parser.add_argument("--runs", type=int, default=11,
                        help="runs of each single-call command (default 11; 0 = skip)")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    args.scenarios = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in args.scenarios if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; expected among {', '.join(SCENARIOS)}")
    return args


SCENARIOS = {
    "idle": lambda: Scenario("idle", "unplugged"),
    "charging": lambda: Scenario("charging", "charging"),
    "green": lambda: GreenScenario("green", stream=True),
    "percall": lambda: GreenScenario("percall", stream=False),
}


def _raise_interrupt(signum, frame) -> None:
    # SIGTERM to the bench cleans up like Ctrl-C does.
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_held():
    """Defer SIGINT/SIGTERM until the block ends (it is bounded by its own deadlines)."""
    held = (signal.SIGINT, signal.SIGTERM)
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    results: list[Result] = []
    for name in args.scenarios:
        scenario = SCENARIOS[name]()
        mode = scenario.car_mode
        extra = f" (waits up to {CHARGING_DEADLINE_S:.0f} s for the 60 s start hold)" \
            if mode == "charging" else ""
        print(f"[{name}] car {mode}: starting the daemon{extra}; window {args.seconds:g} s",
              flush=True)
        try:
            scenario.start()
            results.append(scenario.run(args.seconds))
        except DaemonFailed as exc:
            with _signals_held():
                scenario.close()
            print(f"[{name}] the daemon failed: {exc}. Its output (tail):", file=sys.stderr)
            print(tail(exc.log_path), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"\n[{name}] interrupted; stopping the daemon", file=sys.stderr)
            return 130
        finally:
            # Clean-up has its own deadlines; a second Ctrl-C must not cut it short.
            with _signals_held():
                scenario.close()
                scenario.remove_dir()
    print_table(results, args.seconds)
    if args.runs > 0:
        print_single_call(single_call_figures(args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
