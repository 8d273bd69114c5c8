"""PI30 poll cost: CPU and wall time of one status poll (QMOD, QPIGS, QPIRI, QPIWS) against the
simulator on a pty, with and without the 2400-baud byte timing; then the daemon's CPU plus its
children's with the PI30 polled every 10 s and the grid meter read every 2 s (one simulated TWC
charging from the sun). Figures and ratios, never assertions.

    .venv/bin/python bench/pi30_poll.py [--polls N] [--seconds S]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import idle_cost  # noqa: E402

from TWCManager.pi30.inverter import read_status  # noqa: E402
from TWCManager.pi30.link import Pi30Link  # noqa: E402
from TWCManager.sim.pi30 import Pi30Model, Pi30Simulator  # noqa: E402

AIM_TOTAL_CPU_S_PER_MIN = 0.2
PI30_INTERVAL_S = 10


def poll_figures(polls: int, baud_timing: bool) -> tuple[float, float]:
    """Median wall seconds and mean CPU seconds (this process) of one status poll."""
    model = Pi30Model(soc_pct=70.0, pv_w=lambda t: 1500.0, load_w=lambda t: 500.0)
    model.step(1.0)
    link_dir = Path(tempfile.mkdtemp(prefix="twc-bench-pi30-"))
    sim = Pi30Simulator(model, link=str(link_dir / "ttyPI30"), baud_timing=baud_timing,
                        step_s=3600).start()
    link = Pi30Link(str(link_dir / "ttyPI30"), timeout_s=5.0)
    walls = []
    cpu_start = time.process_time()
    try:
        for _ in range(polls):
            started = time.perf_counter()
            read_status(link)
            walls.append(time.perf_counter() - started)
    finally:
        cpu = time.process_time() - cpu_start
        link.close()
        sim.stop()
        link_dir.rmdir()
    return statistics.median(walls), cpu / polls


class Pi30Scenario(idle_cost.GreenScenario):
    """idle_cost's green scenario (2 s meter, a car charging) plus a PI30 polled every 10 s."""

    def __init__(self) -> None:
        super().__init__("pi30", stream=True)
        self.pi30 = None

    def start(self) -> None:
        model = Pi30Model(soc_pct=70.0, pv_w=lambda t: 1500.0, load_w=lambda t: 500.0)
        self.pi30 = Pi30Simulator(model, link=str(self.dir / "ttyPI30")).start()
        super().start()

    def extra_config(self) -> str:
        return (super().extra_config() + f'\n[pi30]\nport = "{self.dir / "ttyPI30"}"\n'
                f"interval_s = {PI30_INTERVAL_S}\n")

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.pi30 is not None:
                self.pi30.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=20, help="polls timed per case (20)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="the daemon's measurement window (60 s)")
    args = parser.parse_args(argv)
    print("One status poll (QMOD, QPIGS, QPIRI, QPIWS) through pi30.link against the simulator:")
    fast_wall, fast_cpu = poll_figures(args.polls, baud_timing=False)
    slow_wall, slow_cpu = poll_figures(max(args.polls // 4, 3), baud_timing=True)
    print(f"  pty, no byte timing:  {fast_wall * 1000:7.1f} ms wall, "
          f"{fast_cpu * 1000:6.2f} ms CPU (both ends, this process)")
    print(f"  2400-baud timing:     {slow_wall * 1000:7.1f} ms wall, "
          f"{slow_cpu * 1000:6.2f} ms CPU; wall x{slow_wall / fast_wall:.0f}")
    scenario = Pi30Scenario()
    print(f"\nDaemon: PI30 every {PI30_INTERVAL_S} s, meter every {idle_cost.GREEN_INTERVAL_S} s, "
          f"a car charging; window {args.seconds:g} s (after the 60 s start hold)", flush=True)
    try:
        scenario.start()
        result = scenario.run(args.seconds)
    finally:
        scenario.close()
        scenario.remove_dir()
    total = result.cpu_s_per_min + result.children_cpu_s_per_min
    print(f"  daemon {result.cpu_s_per_min:.3f} + children {result.children_cpu_s_per_min:.3f} "
          f"= {total:.3f} CPU-s/min; aim <= {AIM_TOTAL_CPU_S_PER_MIN}: "
          f"x{total / AIM_TOTAL_CPU_S_PER_MIN:.2f} of it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
