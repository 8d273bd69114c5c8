"""getStatus round-trip time over the SysV queue: our client library against a PHP-style client.

Runs the real daemon (`python -m TWCManager`) as a child process against one simulated TWC
(protocol 2, 32 A, car charging) on a pseudo-terminal, with a private queue (ftok of a temp
directory), then times, one after the other:

  client   `TWCManager.ipc_client.IpcClient.query("getStatus")`, --count times
  php      what the old PHP pages did (original-program.md §8.5): send, then a non-blocking
           receive every 100 ms, putting back young replies that are not ours; --php-count
           times (each takes about 100 ms, so fewer)

and prints p50 / p99 of each, their ratio, and both against the original TWCManager
(13 ms p50, 121 ms p99) and the aims (< 2 ms p50, < 10 ms p99).

A bench prints figures, it asserts nothing: exit 0, or 1 if the daemon does not start.
The daemon is always stopped, and its temp directory and queue removed.

    .venv/bin/python bench/ipc_latency.py [--count 1000] [--php-count 100]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
for path in (str(REPO_ROOT), str(BENCH_DIR)):
    if path not in sys.path:
        sys.path.insert(0, path)

import idle_cost  # noqa: E402  (the daemon-as-a-child-process helpers)
from idle_cost import DaemonFailed, _signals_held, tail  # noqa: E402
from TWCManager.ipc import wire as ipc  # noqa: E402
from TWCManager.ipc_client import IpcClient, IpcError  # noqa: E402
from TWCManager.core.settings import Settings  # noqa: E402
from TWCManager.settings_file import save_settings
from TWCManager.sim import Car, SimBus, SimulatedTWC, open_pty  # noqa: E402

ORIGINAL_P50_MS = 13.0
ORIGINAL_P99_MS = 121.0
AIM_P50_MS = 2.0
AIM_P99_MS = 10.0

IPC_UP_DEADLINE_S = 30.0        # daemon start-up until it answers a ping
QUERY_TIMEOUT_S = 5.0           # per query, as the PHP pages (50 x 100 ms)
PHP_POLL_S = 0.1
PHP_TRIES = 50


class BenchDaemon(idle_cost.Scenario):
    """idle_cost's child-process daemon with its own wiring and one unit; close() also
    removes the queue (the daemon never does)."""

    def __init__(self, name: str, *, bench: str, non_scheduled_amps: int, wiring_all: int = 16,
                 wiring_per: int = 16, min_amps: int = 6, unit_max_amps: float = 32.0) -> None:
        super().__init__(name, "charging")
        self.bench = bench
        self.non_scheduled_amps = non_scheduled_amps
        self.wiring = (wiring_all, wiring_per, min_amps)
        self.unit_max_amps = unit_max_amps
        self.key = ipc.ipc_key(str(self.dir))

    def start(self) -> None:
        link = self.dir / "ttyTWC"
        settings_file = self.dir / "TWCManagerSettings.txt"
        config = self.dir / "twcmanager.toml"
        wiring_all, wiring_per, min_amps = self.wiring
        config.write_text(idle_cost.CONFIG_TOML.format(
            bench=self.bench, port=link, ipc=self.dir, settings=settings_file,
            wiring_all=wiring_all, wiring_per=wiring_per, min_amps=min_amps))
        save_settings(settings_file, Settings(non_scheduled_amps=self.non_scheduled_amps))
        self.unit = SimulatedTWC(0x032E, 0x01, protocol=2, max_amps=self.unit_max_amps,
                                 car=Car(mode="charging", car_max_amps=self.unit_max_amps))
        self.bus = SimBus(open_pty(str(link)), [self.unit])
        self.bus.start()
        self._log_file = open(self.log_path, "wb")
        env = {k: v for k, v in os.environ.items() if k != "TWCMANAGER_CONFIG"}
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "TWCManager", "--config", str(config)],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT)

    def wait_for_ipc(self, client: IpcClient) -> float:
        """Ping until the daemon answers; returns the seconds it took."""
        started = time.monotonic()
        while True:
            self._check_alive()
            try:
                if client.query("ping=up", timeout_s=0.5) == "pong=up":
                    return time.monotonic() - started
            except IpcError:
                pass  # no queue yet, or not serving it yet
            if time.monotonic() - started > IPC_UP_DEADLINE_S:
                raise DaemonFailed(f"no answer on the IPC queue within {IPC_UP_DEADLINE_S:.0f} s",
                                   self.log_path)
            time.sleep(0.05)

    def close(self) -> None:
        try:
            super().close()
        finally:
            ipc.remove_queue(self.key)


def run_bench(bench: BenchDaemon, body) -> int:
    """Start the daemon, run body(bench), always clean up. 0, 1 (daemon failed) or 130."""
    try:
        bench.start()
        body(bench)
    except DaemonFailed as exc:
        print(f"the daemon failed: {exc}. Its output (tail):", file=sys.stderr)
        print(tail(exc.log_path), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the daemon", file=sys.stderr)
        return 130
    finally:
        # Clean-up has its own deadlines; a second Ctrl-C must not cut it short.
        with _signals_held():
            bench.close()
            bench.remove_dir()
    return 0


# ---- the two clients -----------------------------------------------------------------------


def php_style_query(queue, text: str) -> str | None:
    """index.php's ipcQuery: receive first, then sleep 100 ms, 50 times; None on time-out."""
    import sysv_ipc

    ident = random.randint(1, 65535)
    queue.send(ipc.pack(int(time.time()), ident, text.encode("ascii")), type=ipc.REQUEST_TYPE)
    for _ in range(PHP_TRIES):
        try:
            body, _mtype = queue.receive(block=False, type=ipc.REPLY_TYPE)
        except sysv_ipc.BusyError:
            body = None
        if body is not None:
            time_field, got_id = ipc.HEADER.unpack_from(body)
            if got_id == ident:
                return body[ipc.HEADER.size:].decode("ascii", "replace")
            if time.time() - time_field < 30:
                queue.send(body, type=ipc.REPLY_TYPE)
        time.sleep(PHP_POLL_S)
    return None


def percentile(sorted_values: list[float], p: float) -> float:
    """Linear-interpolated percentile of an ascending list (numpy's default method)."""
    pos = (len(sorted_values) - 1) * p / 100
    low = int(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def measure(name: str, query, count: int) -> dict:
    times_ms, failures = [], 0
    for _ in range(count):
        t0 = time.perf_counter()
        ok = query()
        elapsed_ms = (time.perf_counter() - t0) * 1000
        if ok:
            times_ms.append(elapsed_ms)
        else:
            failures += 1
    times_ms.sort()
    result = {"name": name, "count": count, "failures": failures}
    if times_ms:
        result.update(p50=percentile(times_ms, 50), p99=percentile(times_ms, 99),
                      mean=statistics.fmean(times_ms), max=times_ms[-1])
    return result


def print_report(results: list[dict]) -> None:
    print()
    print(f"getStatus round trip (original TWCManager: {ORIGINAL_P50_MS:g} ms p50, "
          f"{ORIGINAL_P99_MS:g} ms p99; aims: < {AIM_P50_MS:g} ms p50, < {AIM_P99_MS:g} ms p99)")
    head = (f"{'client':<8} {'n':>5} {'fail':>4} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} "
            f"{'max ms':>8} {'p50/orig':>8} {'p99/orig':>8}  verdict")
    print(head)
    print("-" * len(head))
    for r in results:
        if "p50" not in r:
            print(f"{r['name']:<8} {r['count']:>5} {r['failures']:>4}  (no answers)")
            continue
        ok = r["p50"] < AIM_P50_MS and r["p99"] < AIM_P99_MS
        print(f"{r['name']:<8} {r['count']:>5} {r['failures']:>4} {r['p50']:>8.2f} "
              f"{r['p99']:>8.2f} {r['mean']:>8.2f} {r['max']:>8.2f} "
              f"{r['p50'] / ORIGINAL_P50_MS:>8.3f} {r['p99'] / ORIGINAL_P99_MS:>8.3f}  "
              f"{'within aims' if ok else 'OVER aims'}")
    ours = next((r for r in results if r["name"] == "client" and "p50" in r), None)
    php = next((r for r in results if r["name"] == "php" and "p50" in r), None)
    if ours and php:
        print(f"\nPHP-style / client: p50 x{php['p50'] / ours['p50']:.0f}, "
              f"p99 x{php['p99'] / ours['p99']:.0f} (a PHP page sleeps 100 ms whenever "
              f"its first receive, right after the send, is too early)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000,
                        help="getStatus queries with the client library (default 1000)")
    parser.add_argument("--php-count", type=int, default=100,
                        help="getStatus queries PHP-style, ~0.1 s each (default 100)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.php_count < 0:
        parser.error("--count must be at least 1 and --php-count not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    import signal

    import sysv_ipc

    args = parse_args(argv)
    signal.signal(signal.SIGTERM, idle_cost._raise_interrupt)
    results: list[dict] = []

    def body(bench: BenchDaemon) -> None:
        client = IpcClient(bench.dir)
        up_s = bench.wait_for_ipc(client)
        print(f"daemon answering after {up_s:.1f} s (queue key {bench.key:#010x}); "
              f"{args.count} queries with the client library", flush=True)
        for _ in range(20):  # warm-up: imports, first-use allocations
            client.query("getStatus", timeout_s=QUERY_TIMEOUT_S)

        def ours() -> bool:
            try:
                return bool(client.query("getStatus", timeout_s=QUERY_TIMEOUT_S))
            except IpcError:
                return False

        results.append(measure("client", ours, args.count))
        if args.php_count:
            print(f"{args.php_count} queries PHP-style (about {args.php_count * PHP_POLL_S:.0f} s)",
                  flush=True)
            queue = sysv_ipc.MessageQueue(bench.key)
            results.append(measure("php", lambda: php_style_query(queue, "getStatus") is not None,
                                   args.php_count))

    code = run_bench(BenchDaemon("ipc", bench="ipc_latency.py", non_scheduled_amps=16), body)
    if results:
        print_report(results)
    return code


if __name__ == "__main__":
    sys.exit(main())
