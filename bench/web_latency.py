"""How fast the web app answers `/TWCapi.php?GetStatus=1` and `/api/v1/state` (Home
Assistant's one request), alone and under load, beside the old PHP way of asking the daemon.

Runs the real daemon (`python -m TWCManager`) against one simulated TWC (protocol 2, 32 A,
car charging) on a pseudo-terminal, and the real web app (`python -m www`, waitress, its
default 8 threads) on 127.0.0.1 with a free port; both share a temp ipc.path. Then:

  HTTP        GET /TWCapi.php?GetStatus=1, then GET /api/v1/state, with 1 and with 20
              concurrent clients, each a thread with its own keep-alive http.client
              connection; a reply counts as failed unless it is HTTP 200 with LennyBo's JSON
              (a `TWC` list), or the state object (a `chargers` list)
  PHP-style   what index.php / LennyBo's TWCapi.php did, in Python with sysv_ipc: send
              getStatus (pack("LSa*", time, random id, text)) as type 2, then up to 50
              rounds of: take ONE type-1 message without waiting; ours -> done; a foreign
              one younger than 30 s is put back at the end of the queue; sleep 100 ms.
              No reply in the 50 rounds (5 s) = a lost reply. With 1, 10 (the original's
              measurement) and 20 concurrent workers (threads, each with its own handle)

and prints p50/p99 latency, requests per second and lost/failed replies beside the original
(PHP + TWCManager.py: 102 ms p50 alone; 986 ms p50 with 10 clients at 9.6 req/s; 26 of 200
replies lost with 10 PHP workers) and the aims (p50 under 10 ms with 20 clients on this
2-core machine, no reply lost). The load generator shares the machine's cores with the web
app and the daemon, as a phone, Home Assistant and a PHP page would not; the figures are an
upper bound on what a client sees.

A bench prints figures, it asserts nothing: exit 0, or 1 if the daemon or the web app does
not start. Every wait has a deadline; the child processes, the pty and the queue are removed.

    .venv/bin/python bench/web_latency.py [--requests 2000] [--php-queries 200]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from TWCManager.ipc.wire import ipc_key  # noqa: E402
from TWCManager.core.settings import Settings  # noqa: E402
from TWCManager.settings_file import save_settings
from TWCManager.sim import Car, SimBus, SimulatedTWC, open_pty  # noqa: E402

PATH = "/TWCapi.php?GetStatus=1"
STATE_PATH = "/api/v1/state"       # Home Assistant's one request per interval (issue 13)

# The original (PHP pages + TWCManager.py, on a Raspberry Pi), and the aims of the port.
ORIGINAL_P50_1_MS = 102.0
ORIGINAL_P50_10_MS = 986.0
ORIGINAL_RPS_10 = 9.6
ORIGINAL_LOST_10 = (26, 200)
AIM_P50_20_MS = 10.0

# The old pages' IPC client (original-program.md §8.3-§8.5).
REQUEST_TYPE, REPLY_TYPE = 2, 1
PHP_POLL_ROUNDS = 50
PHP_POLL_SLEEP_S = 0.1
PHP_REQUEUE_MAX_AGE_S = 30
PHP_HEADER = struct.Struct("=LH")   # pack("LSa*"): native u32 time, u16 id

# Deadlines (seconds).
START_DEADLINE_S = 30.0       # both children up, the unit known to the daemon
HTTP_TIMEOUT_S = 10.0         # one HTTP request
SCENARIO_DEADLINE_S = 180.0   # one scenario's threads
STOP_DEADLINE_S = 10.0        # SIGINT, then SIGKILL


class StartFailed(Exception):
    pass


@dataclass
class Result:
    name: str
    clients: int
    latencies_s: list[float] = field(default_factory=list)
    failed: int = 0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.latencies_s) + self.failed

    def pct_ms(self, q: float) -> float | None:
        if not self.latencies_s:
            return None
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies_s) / self.wall_s if self.wall_s > 0 else 0.0


# ---- the rig -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Rig:
    """Temp dir, simulated unit on a pty, the daemon and the web app as children."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="twc-bench-web-"))
        self.ipc_dir = self.dir / "ipc"
        self.ipc_dir.mkdir()
        self.port = free_port()
        self.unit = SimulatedTWC(0x032E, 0x01, protocol=2, max_amps=32.0,
                                 car=Car("charging", car_max_amps=32.0))
        self.bus: SimBus | None = None
        self.children: dict[str, subprocess.Popen] = {}
        self._logs: list = []
        self.queue_key: int | None = None

    def start(self) -> None:
        link = self.dir / "ttyTWC"
        settings_file = self.dir / "TWCManagerSettings.txt"
        save_settings(settings_file, Settings(non_scheduled_amps=16))
        config = self.dir / "twcmanager.toml"
        config.write_text(
            "# Written by bench/web_latency.py\n"
            f'[twc]\nserial_port = "{link}"\nwiring_max_amps_all_twcs = 32\n'
            "wiring_max_amps_per_twc = 32\nmin_amps_per_twc = 6\n"
            '[green]\ncommand = "false"\n'
            f'[ipc]\npath = "{self.ipc_dir}"\n[settings]\nfile = "{settings_file}"\n'
            f'[web]\nhost = "127.0.0.1"\nport = {self.port}\n[log]\nlevel = "info"\n')
        self.queue_key = ipc_key(str(self.ipc_dir))
        self.bus = SimBus(open_pty(str(link)), [self.unit])
        self.bus.start()
        self._spawn("daemon", ["-m", "TWCManager", "--config", str(config),
                               "--serial-port", str(link), "--settings-file", str(settings_file),
                               "--ipc-path", str(self.ipc_dir)])
        self._spawn("www", ["-m", "www", "--config", str(config), "--ipc-path", str(self.ipc_dir),
                            "--host", "127.0.0.1", "--port", str(self.port)])
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            for name, proc in self.children.items():
                if proc.poll() is not None:
                    raise StartFailed(f"{name} exited with code {proc.returncode}")
            ok, _ = http_get_once(self.port)
            if ok:
                return
            if time.monotonic() > deadline:
                raise StartFailed(f"no status with a TWC from {PATH} within "
                                  f"{START_DEADLINE_S:.0f} s")
            time.sleep(0.2)

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.dir / f"{name}.out", "wb")
        self._logs.append(log)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("TWCMANAGER_CONFIG", None)
        self.children[name] = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, env=env,
                                               stdin=subprocess.DEVNULL, stdout=log,
                                               stderr=subprocess.STDOUT)

    def tail(self, lines: int = 25) -> str:
        out = []
        for name in self.children:
            try:
                text = (self.dir / f"{name}.out").read_text(errors="replace")
            except OSError as exc:
                text = f"(cannot read: {exc})"
            out.append(f"--- {name} (tail)\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(out)

    def close(self) -> None:
        for name, proc in reversed(list(self.children.items())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(STOP_DEADLINE_S)
                except subprocess.TimeoutExpired:
                    print(f"  {name} ignored SIGINT for {STOP_DEADLINE_S:.0f} s; SIGKILL",
                          file=sys.stderr)
                    proc.kill()
                    proc.wait(STOP_DEADLINE_S)
        if self.bus is not None:
            self.bus.close()
        for log in self._logs:
            log.close()
        if self.queue_key is not None:   # the daemon never removes its queue, like the original
            from TWCManager.ipc.wire import remove_queue

            if remove_queue(self.queue_key):
                print(f"removed the daemon's queue {self.queue_key:#010x}", file=sys.stderr)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- HTTP clients --------------------------------------------------------------------------


def valid_status(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and isinstance(data.get("TWC"), list) \
        and "maxAmpsToDivideAmongSlaves" in data


def valid_state(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and isinstance(data.get("chargers"), list) and "mode" in data


VALIDATORS = {PATH: valid_status, STATE_PATH: valid_state}


def http_get_once(port: int) -> tuple[bool, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", PATH)
        response = conn.getresponse()
        body = response.read()
        return response.status == 200 and valid_status(body) and b'"TWC":[]' not in body, ""
    except OSError as exc:
        return False, str(exc)
    finally:
        conn.close()


def run_threads(worker, clients: int, result: Result) -> None:
    """Start `clients` threads together; the result's wall time spans all of them."""
    barrier = threading.Barrier(clients + 1)
    lock = threading.Lock()
    threads = [threading.Thread(target=worker, args=(i, barrier, lock), daemon=True)
               for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait(timeout=30)
    started = time.perf_counter()
    deadline = time.monotonic() + SCENARIO_DEADLINE_S
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    result.wall_s = time.perf_counter() - started
    stuck = sum(t.is_alive() for t in threads)
    if stuck:
        result.notes.append(f"{stuck} client threads still running at the "
                            f"{SCENARIO_DEADLINE_S:.0f} s deadline (left as daemon threads)")


def http_scenario(port: int, clients: int, total: int, path: str = PATH) -> Result:
    result = Result(f"HTTP {path}", clients)
    valid = VALIDATORS[path]
    per_client = max(1, total // clients)
    errors: dict[str, int] = {}

    def worker(_index, barrier, lock):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_S)
        try:
            conn.connect()
        except OSError:
            pass  # counted below, per request
        barrier.wait(timeout=30)
        for _ in range(per_client):
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                ok = response.status == 200 and valid(body)
                why = "" if ok else f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as exc:
                ok, why = False, type(exc).__name__
                conn.close()  # the next request reconnects
            elapsed = time.perf_counter() - t0
            with lock:
                if ok:
                    result.latencies_s.append(elapsed)
                else:
                    result.failed += 1
                    errors[why] = errors.get(why, 0) + 1
        conn.close()

    run_threads(worker, clients, result)
    if errors:
        result.notes.append("failures: " + ", ".join(f"{k} x{v}" for k, v in errors.items()))
    return result


# ---- the old PHP pages' IPC client ---------------------------------------------------------


def php_scenario(key: int, clients: int, total: int) -> Result:
    import sysv_ipc

    result = Result("PHP-style IPC, 100 ms polling", clients)
    per_client = max(1, total // clients)
    put_back_total = [0]

    def query(queue, rng) -> float | None:
        ident = rng.randint(1, 65535)
        t0 = time.perf_counter()
        queue.send(PHP_HEADER.pack(int(time.time()), ident) + b"getStatus",
                   block=False, type=REQUEST_TYPE)
        for _ in range(PHP_POLL_ROUNDS):
            try:
                body, _ = queue.receive(block=False, type=REPLY_TYPE)
            except sysv_ipc.BusyError:
                time.sleep(PHP_POLL_SLEEP_S)
                continue
            if len(body) >= PHP_HEADER.size:
                sent_at, reply_id = PHP_HEADER.unpack_from(body)
                if reply_id == ident:
                    return time.perf_counter() - t0
                if time.time() - sent_at < PHP_REQUEUE_MAX_AGE_S:
                    try:
                        queue.send(body, block=False, type=REPLY_TYPE)
                        put_back_total[0] += 1
                    except sysv_ipc.BusyError:
                        pass  # the page gave up on a full queue too
            time.sleep(PHP_POLL_SLEEP_S)
        return None

    def worker(index, barrier, lock):
        queue = sysv_ipc.MessageQueue(key)
        rng = random.Random(os.getpid() * 1000 + index + time.time_ns())
        barrier.wait(timeout=30)
        for _ in range(per_client):
            try:
                elapsed = query(queue, rng)
            except sysv_ipc.Error:
                elapsed = None
            with lock:
                if elapsed is None:
                    result.failed += 1
                else:
                    result.latencies_s.append(elapsed)

    run_threads(worker, clients, result)
    if put_back_total[0]:
        result.notes.append(f"{put_back_total[0]} foreign replies taken and put back")
    return result


def drain_replies(key: int) -> int:
    """Replies nobody waits for any more (a PHP-style query gave up): remove them, so the
    next scenario starts on an empty queue."""
    import sysv_ipc

    queue = sysv_ipc.MessageQueue(key)
    count = 0
    while True:
        try:
            queue.receive(block=False, type=REPLY_TYPE)
            count += 1
        except sysv_ipc.BusyError:
            return count


# ---- report --------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(results: list[Result], threads_note: str) -> None:
    head = (f"{'what':<34} {'clients':>7} {'replies':>9} {'lost/failed':>11} "
            f"{'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    print()
    print(f"GetStatus latency, one simulated TWC, web app and daemon on 127.0.0.1 "
          f"({os.cpu_count()} CPUs; {threads_note})")
    print(head)
    print("-" * len(head))
    print(f"{'original: PHP page + TWCManager.py':<34} {1:>7} {'-':>9} {'-':>11} "
          f"{ORIGINAL_P50_1_MS:>8.0f} {'-':>8} {'-':>8}")
    lost, of = ORIGINAL_LOST_10
    print(f"{'original: PHP page + TWCManager.py':<34} {10:>7} {of:>9} {f'{lost} of {of}':>11} "
          f"{ORIGINAL_P50_10_MS:>8.0f} {'-':>8} {ORIGINAL_RPS_10:>8.1f}")
    for r in results:
        print(f"{r.name:<34} {r.clients:>7} {len(r.latencies_s):>9} "
              f"{f'{r.failed} of {r.sent}':>11} {fmt(r.pct_ms(0.5), '.2f'):>8} "
              f"{fmt(r.pct_ms(0.99), '.2f'):>8} {r.rps:>8.1f}")
    print(f"{'aim':<34} {20:>7} {'':>9} {'0':>11} {f'< {AIM_P50_20_MS:g}':>8}")
    print()
    for r in results:
        for note in r.notes:
            print(f"  {r.name}, {r.clients} clients: {note}")
    http20 = next((r for r in results if r.name == f"HTTP {PATH}" and r.clients == 20), None)
    if http20 is not None and http20.pct_ms(0.5) is not None:
        p50 = http20.pct_ms(0.5)
        print(f"  aim p50 < {AIM_P50_20_MS:g} ms with 20 HTTP clients: "
              f"{'met' if p50 < AIM_P50_20_MS else 'NOT met'} ({p50:.2f} ms)")
    http_failed = sum(r.failed for r in results if r.name.startswith("HTTP"))
    http_sent = sum(r.sent for r in results if r.name.startswith("HTTP"))
    print(f"  aim no reply lost through the web app: "
          f"{'met' if http_failed == 0 else 'NOT met'} ({http_failed} of {http_sent} failed)")
    php_failed = sum(r.failed for r in results if r.name.startswith("PHP"))
    php_sent = sum(r.sent for r in results if r.name.startswith("PHP"))
    why = (" (a limit of the old client's one-message-per-100 ms polling, which the web app "
           "does not use)") if php_failed else ""
    print(f"  PHP-style clients against this daemon: {php_failed} of {php_sent} replies lost{why}")


# ---- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000,
                        help="HTTP requests per HTTP scenario (default 2000; 1 client: a quarter)")
    parser.add_argument("--php-queries", type=int, default=200,
                        help="queries per PHP-style scenario with 10 or 20 workers (default 200, "
                             "as the original's measurement; 1 worker: 30)")
    args = parser.parse_args(argv)
    if args.requests < 20 or args.php_queries < 20:
        parser.error("--requests and --php-queries must be at least 20")
    return args


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    rig = Rig()
    results: list[Result] = []
    try:
        print("starting the daemon, a simulated TWC and the web app ...", flush=True)
        try:
            rig.start()
        except StartFailed as exc:
            print(f"bench: {exc}\n{rig.tail()}", file=sys.stderr)
            return 1
        http_scenario(rig.port, 4, 100)  # warm-up: imports, first connections, the router
        for path in (PATH, STATE_PATH):
            for clients, total in ((1, max(20, args.requests // 4)), (20, args.requests)):
                print(f"HTTP {path}, {clients} client(s), {total} requests ...", flush=True)
                results.append(http_scenario(rig.port, clients, total, path))
        for clients, total in ((1, 30), (10, args.php_queries), (20, args.php_queries)):
            print(f"PHP-style polling, {clients} worker(s), {total} queries ...", flush=True)
            results.append(php_scenario(rig.queue_key, clients, total))
            left = drain_replies(rig.queue_key)
            if left:
                results[-1].notes.append(f"{left} late replies left in the queue, removed")
        load = os.getloadavg()
        print_report(results, f"www: waitress, 8 threads; load average {load[0]:.2f} "
                              f"(1 min), {load[1]:.2f} (5 min) at the end: other work on the "
                              f"machine inflates the figures")
        return 0
    except KeyboardInterrupt:
        print("\nbench: interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        rig.close()


if __name__ == "__main__":
    sys.exit(main())
