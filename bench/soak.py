"""Soak: the daemon charging a car from the sun for N minutes; what grows, stalls or is left.

Runs, for --minutes of real time: one simulated TWC (protocol 2, 32 A, a car that wants to
charge) on a pseudo-terminal, the simulated SolarEdge inverter (Modbus TCP on 127.0.0.1, a 9 kWp
sun from 11:00 with clouds, the car's draw seen by the meter), the daemon (`python -m
TWCManager`, log level info, log file, green tracking read every 2 s by the real solaredge
command), and the web app (`python -m www`) polled every 2 s with GET /api/getStatus like the
dashboard. Then prints:

  RSS         VmRSS of the daemon and of the web app after the warm-up (30 s or 10 % of the
              run, the smaller) and at the end; growth in kB and kB/h
  heartbeats  master heartbeats the simulated unit read off the pty: count, largest and p99 gap
              (the time from the last one to the end of the run counts as a gap too)
  log         bytes the daemon wrote to its log file, per hour of run
  queues      SysV message queues present after everything stopped that were not there before
  CPU         CPU-s per minute of the daemon and of its children (the energy command: the
              reaped ones from its cutime+cstime, a kept-running one from its own stat), from
              /proc/<pid>/stat, over the window after the warm-up

A bench prints figures, it asserts nothing: exit 0; 1 if the daemon fails; 130 on Ctrl-C.

    .venv/bin/python bench/soak.py --minutes 60 [--json] [--no-web]
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
for _path in (str(REPO_ROOT), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# idle_cost owns the daemon-as-a-child helpers and the imports of the simulator and settings
# (kept current while TWCManager/ is reorganised); soak only adds the inverter, web and figures.
import idle_cost  # noqa: E402
from idle_cost import (  # noqa: E402
    CLK_TCK, DaemonFailed, _raise_interrupt, _signals_held, status_field, tail)
import sysv_ipc  # noqa: E402
from TWCManager.sim.inverter import InverterSimulator, SunCurve, SunRunner  # noqa: E402

WARMUP_MAX_S = 30.0
WARMUP_SHARE = 0.10
GREEN_INTERVAL_S = 2
WEB_POLL_S = 2.0
SUN_START_H = 11.0            # simulated time of day, whatever the real clock says
SUN_SEED = 7                  # passing clouds: the offer follows them
WATTS_PER_AMP = 230 * 3       # green.volts x green.phases (the defaults): the car on the meter

# Deadlines (seconds).
WEB_UP_DEADLINE_S = 30.0      # web app answering /api/getStatus
HTTP_TIMEOUT_S = 3.0
STOP_DEADLINE_S = 5.0         # SIGTERM, then SIGKILL
FIRST_HEARTBEAT_DEADLINE_S = idle_cost.FIRST_HEARTBEAT_DEADLINE_S


def energy_command(port: int) -> str:
    # solaredge.py may move into TWCManager.energy while the package is reorganised.
    moved = (REPO_ROOT / "TWCManager" / "energy" / "solaredge.py").exists()
    module = "TWCManager.energy.solaredge" if moved else "TWCManager.solaredge"
    return f"{sys.executable} -m {module} --host 127.0.0.1 --port {port} --json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kb(pid: int) -> int:
    return int(status_field(pid, "VmRSS").split()[0])


def proc_table() -> dict[int, tuple[int, int, float, float]]:
    """Every process now: pid -> (ppid, start time in ticks, own CPU-s, CPU-s of its reaped
    children), from /proc/<pid>/stat."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                text = f.read()
        except OSError:
            continue    # gone meanwhile
        # The command name (field 2) may contain spaces; the fields after it start past ')'.
        fields = text[text.rindex(")") + 2:].split()
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        table[int(name)] = (int(fields[1]), int(fields[19]),
                            (utime + stime) / CLK_TCK, (cutime + cstime) / CLK_TCK)
    return table


def descendants(root: int, table: dict) -> list[int]:
    """Live descendants of root, whatever their session: the daemon starts its energy command
    in a session of its own."""
    found, todo = [], [root]
    while todo:
        parent = todo.pop()
        kids = [pid for pid, row in table.items() if row[0] == parent]
        found += kids
        todo += kids
    return found


def cpu_sample(pid: int) -> tuple[float, float]:
    """(own CPU-s, CPU-s of all its descendants): the reaped ones (cutime+cstime) and the
    live ones (a kept-running energy command is never reaped during the run)."""
    table = proc_table()
    _, _, own_s, reaped_s = table[pid]
    live_s = sum(table[d][2] + table[d][3] for d in descendants(pid, table))
    return own_s, reaped_s + live_s


def queues() -> dict[int, tuple[int, set[int]]]:
    """SysV message queues now: msqid -> (key, {last sender pid, last receiver pid})."""
    with open("/proc/sysvipc/msg") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return {int(r[1]): (int(r[0]), {int(r[5]), int(r[6])}) for r in rows if len(r) > 6}


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0


def stop_group(proc: subprocess.Popen | None, name: str) -> None:
    """SIGTERM the child, SIGKILL after a deadline, then SIGKILL whatever is left in its group
    (an energy command caught mid-run)."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            print(f"  {name} ignored SIGTERM for {STOP_DEADLINE_S:.0f} s; SIGKILL", file=sys.stderr)
            proc.kill()
            proc.wait(STOP_DEADLINE_S)
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # its own session: pgid == pid
    except (ProcessLookupError, PermissionError):
        pass


class Soak(idle_cost.Scenario):
    """idle_cost's scenario (temp dir, unit on a pty, daemon child) plus the inverter, the
    web app and the heartbeat clock."""

    def __init__(self, web: bool) -> None:
        super().__init__("soak", "charging")
        self.with_web = web
        # The daemon's queue is ftok(ipc.path, 'T'); ipc.path is our private dir.
        self.queue_key = sysv_ipc.ftok(str(self.dir), ord("T"), silence_warning=True)
        self.daemon_log = self.dir / "daemon.log"
        self.heartbeats_at: list[float] = []       # sim's monotonic clock
        self.inverter: InverterSimulator | None = None
        self.sun: SunRunner | None = None
        self.web: subprocess.Popen | None = None
        self.web_port = 0
        self.web_ok = self.web_failed = 0
        self.web_worst_s = 0.0
        self._web_out = None
        self._stop_polling = threading.Event()
        self._poller: threading.Thread | None = None

    def start(self) -> None:
        link = self.dir / "ttyTWC"
        settings_file = self.dir / "TWCManagerSettings.txt"
        config = self.dir / "twcmanager.toml"
        self.inverter = InverterSimulator(solar_w=0, grid_w=0).start()
        self.web_port = free_port()
        text = idle_cost.CONFIG_TOML.format(
            bench="soak.py", port=link, ipc=self.dir, settings=settings_file,
            wiring_all=16, wiring_per=16, min_amps=6)
        no_log_file = '[log]\nfile = ""\n'
        if no_log_file not in text:
            raise RuntimeError("idle_cost.CONFIG_TOML has no '[log] file = \"\"' to replace")
        # max_bytes 0: no rotation, so the file's size is all the daemon wrote.
        text = text.replace(no_log_file, f'[log]\nfile = "{self.daemon_log}"\nmax_bytes = 0\n')
        text += (f'\n[green]\ncommand = "{energy_command(self.inverter.port)}"\n'
                 f"interval_s = {GREEN_INTERVAL_S}\nstart_hour = 0\nend_hour = 24\n"
                 f'\n[web]\nhost = "127.0.0.1"\nport = {self.web_port}\n')
        config.write_text(text)
        idle_cost.save_settings(settings_file, idle_cost.Settings(non_scheduled_amps=-1))

        self.unit = idle_cost.SimulatedTWC(0x032E, 0x01, protocol=2, max_amps=32.0,
                                           car=idle_cost.Car(mode="charging", car_max_amps=32.0))
        self.bus = idle_cost.SimBus(idle_cost.open_pty(str(link)), [self.unit],
                                    on_frame=self._on_frame)
        self.bus.start()
        car = self.unit.car
        self.sun = SunRunner(self.inverter, SunCurve(peak_w=9000, seed=SUN_SEED),
                             start_h=SUN_START_H, load_w=lambda: car.amps * WATTS_PER_AMP).start()

        self._log_file = open(self.log_path, "wb")   # the console (stdout) of the daemon
        self.proc = self._spawn(["-m", "TWCManager", "--config", str(config)], self._log_file)
        if self.with_web:
            self._web_out = open(self.dir / "www.out", "wb")
            self.web = self._spawn(["-m", "www", "--config", str(config), "--host", "127.0.0.1",
                                    "--port", str(self.web_port)], self._web_out)

    def _spawn(self, args: list[str], out) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if k != "TWCMANAGER_CONFIG"}
        env["PYTHONUNBUFFERED"] = "1"
        # Own session: Ctrl-C on the terminal reaches only the bench, which stops them in order,
        # and the group can be killed as a whole.
        return subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def _on_frame(self, at: float, direction: str, msg) -> None:
        # By class name: the messages module is moving between packages.
        if direction == "rx" and type(msg).__name__ == "MasterHeartbeat":
            self.heartbeats_at.append(at)

    # -- the web app --

    def get_status(self) -> tuple[bool, float]:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=HTTP_TIMEOUT_S)
        try:
            conn.request("GET", "/api/getStatus")
            response = conn.getresponse()
            ok = response.status == 200 and isinstance(json.loads(response.read()), dict)
        except (OSError, ValueError, http.client.HTTPException):
            ok = False
        finally:
            conn.close()
        return ok, time.monotonic() - started

    def start_polling(self) -> None:
        end = time.monotonic() + WEB_UP_DEADLINE_S
        while not self.get_status()[0]:
            self._check_alive()
            if self.web.poll() is not None or time.monotonic() > end:
                print(f"  web app not answering within {WEB_UP_DEADLINE_S:.0f} s; no web figures. "
                      f"Its output:\n{tail(self.dir / 'www.out', 10)}", file=sys.stderr)
                stop_group(self.web, "web app")
                self.web = None
                return
            time.sleep(0.2)
        self._poller = threading.Thread(target=self._poll, name="web-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop_polling.wait(WEB_POLL_S):
            ok, took_s = self.get_status()
            if ok:
                self.web_ok += 1
            else:
                self.web_failed += 1
            self.web_worst_s = max(self.web_worst_s, took_s)

    def close(self) -> None:
        self._stop_polling.set()
        table = proc_table()
        # Children in sessions of their own outlive a killed parent: noted now, killed after.
        orphans = {d: table[d][1] for p in (self.proc, self.web) if p is not None
                   for d in descendants(p.pid, table)}
        try:
            if self._poller is not None:
                self._poller.join(HTTP_TIMEOUT_S + 1)
            stop_group(self.web, "web app")
            super().close()                      # daemon (SIGTERM, SIGKILL), unit, console file
            if self.proc is not None:
                stop_group(self.proc, "daemon")  # only the group's leftovers by now
            now = proc_table()
            for pid, started in orphans.items():
                if pid in now and now[pid][1] == started:    # the same process, not a reused pid
                    print(f"  killing {pid}, left running by its parent", file=sys.stderr)
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
        finally:
            if self.sun is not None:
                self.sun.stop()
            if self.inverter is not None:
                self.inverter.stop()
            if self._web_out is not None:
                self._web_out.close()


def sample(pid: int) -> tuple[float, float, int]:
    """(own CPU-s, CPU-s of its descendants, RSS kB) from /proc."""
    return (*cpu_sample(pid), rss_kb(pid))


def run(soak: Soak, minutes: float) -> dict:
    run_s = minutes * 60
    warmup_s = min(WARMUP_MAX_S, WARMUP_SHARE * run_s)
    started = time.monotonic()
    soak.start()
    soak.wait_until("heartbeat from the daemon", lambda: soak.heartbeats_at,
                    FIRST_HEARTBEAT_DEADLINE_S)
    if soak.web is not None:
        soak.start_polling()
    soak.sleep_alive(max(0.0, started + warmup_s - time.monotonic()))

    daemon_pid = soak.proc.pid
    web = soak.web
    t0 = time.monotonic()
    cpu0, child0, rss0 = sample(daemon_pid)
    web0 = sample(web.pid) if web is not None else None
    amps: list[float] = []
    while (left := started + run_s - time.monotonic()) > 0:
        soak.sleep_alive(min(left, 1.0))
        amps.append(soak.unit.actual_amps())
        soak.bus.log.clear()    # the sim keeps every frame; our heartbeat list is enough
    t1 = time.monotonic()
    cpu1, child1, rss1 = sample(daemon_pid)
    web1 = sample(web.pid) if web is not None and web.poll() is None else None
    window_h = (t1 - t0) / 3600
    per_min = 60 / (t1 - t0)

    hb = list(soak.heartbeats_at)
    gaps = [b - a for a, b in zip(hb, hb[1:])]
    tail_gap_s = t1 - hb[-1]    # a daemon that stopped sending shows here
    figures = {
        "minutes": round((t1 - started) / 60, 3),
        "warmup_s": round(t0 - started, 1),
        "window_s": round(t1 - t0, 1),
        "daemon_rss_start_kb": rss0,
        "daemon_rss_end_kb": rss1,
        "daemon_rss_growth_kb": rss1 - rss0,
        "daemon_rss_growth_kb_per_h": round((rss1 - rss0) / window_h, 1),
        "daemon_cpu_s_per_min": round((cpu1 - cpu0 + child1 - child0) * per_min, 4),
        "daemon_own_cpu_s_per_min": round((cpu1 - cpu0) * per_min, 4),
        "daemon_children_cpu_s_per_min": round((child1 - child0) * per_min, 4),
        "heartbeats": len(hb),
        "heartbeat_gap_max_s": round(max(gaps + [tail_gap_s]), 3),
        "heartbeat_gap_p99_s": round(p99(gaps), 3),
        "heartbeat_gap_tail_s": round(tail_gap_s, 3),
        "log_bytes": soak.daemon_log.stat().st_size if soak.daemon_log.exists() else 0,
        "car_amps_mean": round(sum(amps) / len(amps), 2) if amps else 0.0,
        # An idle unit reports a fraction of an amp; 1 A tells a charging car from it.
        "car_charging_share": round(sum(a > 1.0 for a in amps) / len(amps), 3) if amps else 0.0,
    }
    figures["log_bytes_per_h"] = round(figures["log_bytes"] / ((t1 - started) / 3600))
    if web0 is not None and web1 is not None:
        figures.update({
            "web_rss_start_kb": web0[2], "web_rss_end_kb": web1[2],
            "web_rss_growth_kb": web1[2] - web0[2],
            "web_rss_growth_kb_per_h": round((web1[2] - web0[2]) / window_h, 1),
            "web_cpu_s_per_min": round((web1[0] - web0[0] + web1[1] - web0[1]) * per_min, 4),
            "web_polls_ok": soak.web_ok, "web_polls_failed": soak.web_failed,
            "web_poll_worst_s": round(soak.web_worst_s, 3)})
    return figures


def print_table(f: dict) -> None:
    rows = [
        ("daemon RSS start / end", f"{f['daemon_rss_start_kb']} / {f['daemon_rss_end_kb']}", "kB"),
        ("daemon RSS growth",
         f"{f['daemon_rss_growth_kb']:+d} ({f['daemon_rss_growth_kb_per_h']:+.0f}/h)", "kB"),
        ("daemon CPU: own + children", f"{f['daemon_own_cpu_s_per_min']:.3f} + "
                                       f"{f['daemon_children_cpu_s_per_min']:.3f}", "CPU-s/min"),
    ]
    if "web_rss_start_kb" in f:
        rows += [
            ("web RSS start / end", f"{f['web_rss_start_kb']} / {f['web_rss_end_kb']}", "kB"),
            ("web RSS growth",
             f"{f['web_rss_growth_kb']:+d} ({f['web_rss_growth_kb_per_h']:+.0f}/h)", "kB"),
            ("web CPU", f"{f['web_cpu_s_per_min']:.3f}", "CPU-s/min"),
            ("web polls ok / failed, worst", f"{f['web_polls_ok']} / {f['web_polls_failed']}, "
                                             f"{f['web_poll_worst_s']:.3f}", "s"),
        ]
    rows += [
        ("master heartbeats", f"{f['heartbeats']}", ""),
        ("heartbeat gap max / p99",
         f"{f['heartbeat_gap_max_s']:.3f} / {f['heartbeat_gap_p99_s']:.3f}", "s"),
        ("log written", f"{f['log_bytes_per_h']} ({f['log_bytes']} in the run)", "B/h"),
        ("queues left (ours / others)", f"{len(f['queues_left_ours'])} / "
                                        f"{len(f['queues_left_others'])} "
                                        f"({f['queues_removed_by_bench']} removed)", ""),
        ("car amps mean, charging", f"{f['car_amps_mean']:.2f}, "
                                    f"{f['car_charging_share'] * 100:.0f} % of samples", "A"),
    ]
    print()
    print(f"Soak {f['minutes']:g} min: RSS and CPU over the {f['window_s']:g} s after a "
          f"{f['warmup_s']:g} s warm-up; per-hour figures are extrapolated from that window.")
    width = max(len(r[0]) for r in rows)
    for name, value, unit in rows:
        print(f"  {name:<{width}}  {value:>26}  {unit}")
    web = (f", web {f['web_rss_growth_kb_per_h']:+.0f} kB/h" if "web_rss_start_kb" in f else "")
    print(f"summary: daemon RSS {f['daemon_rss_growth_kb_per_h']:+.0f} kB/h{web}, "
          f"{f['daemon_cpu_s_per_min']:.3f} CPU-s/min, {f['heartbeats']} heartbeats with worst gap "
          f"{f['heartbeat_gap_max_s']:.2f} s, log {f['log_bytes_per_h'] / 1000:.0f} kB/h, "
          f"{len(f['queues_left_ours'])} queue(s) of ours left")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="real time the soak runs, in minutes (default 10; 0.5 for a check)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--no-web", action="store_true", help="do not start the web app")
    args = parser.parse_args(argv)
    if not args.minutes > 0:
        parser.error("--minutes must be positive")
    return args


def clean_up(soak: Soak, queues_before: dict) -> dict:
    """Stop everything, remove our queue and directory; the queue figures."""
    pids = {os.getpid()} | {p.pid for p in (soak.proc, soak.web) if p is not None}
    soak.close()

    def ours(key: int, users: set[int]) -> bool:
        return key == soak.queue_key or bool(users & pids)

    # The daemon never removes its queue (like the original): the bench does.
    new = [(q, v) for q, v in queues().items() if q not in queues_before]
    for msqid, (key, users) in new:
        if ours(key, users):
            with contextlib.suppress(sysv_ipc.ExistentialError):
                sysv_ipc.remove_message_queue(msqid)
    shutil.rmtree(soak.dir, ignore_errors=True)
    left = [v for q, v in queues().items() if q not in queues_before]
    figures = {"queues_removed_by_bench": sum(ours(*v) for _, v in new),
               "queues_left_ours": sorted(f"{k:#010x}" for k, u in left if ours(k, u)),
               "queues_left_others": sorted(f"{k:#010x}" for k, u in left if not ours(k, u))}
    if figures["queues_left_ours"]:
        print(f"  could not remove our queue(s) {figures['queues_left_ours']}", file=sys.stderr)
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # Even when started with SIGINT ignored (a background job of a script), Ctrl-C cleans up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    queues_before = queues()
    print(f"soak: {args.minutes:g} min of a charging car on green energy "
          f"(daemon{'' if args.no_web else ' + web app'}); Ctrl-C stops and cleans up", flush=True)
    soak: Soak | None = None
    figures: dict = {}
    try:
        soak = Soak(web=not args.no_web)
        figures = run(soak, args.minutes)
    except DaemonFailed as exc:
        print(f"the daemon failed: {exc}. Its output (tail):\n{tail(exc.log_path)}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        # Clean-up has its own deadlines; a second Ctrl-C must not cut it short.
        with _signals_held():
            if soak is not None:
                figures.update(clean_up(soak, queues_before))
    print_table(figures)
    if figures["queues_left_others"]:
        print(f"  note: new queues not used by our processes (another program's?): "
              f"{', '.join(figures['queues_left_others'])}")
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
