"""`python -m TWCManager.sim`: simulated TWC slaves (or a sniffer) on a port or a new pty.

Examples:
    python -m TWCManager.sim --pty --link /tmp/twc          # one p2 32 A unit, car charging
    python -m TWCManager.sim --port /dev/ttyUSB0 --mode sniff
    python -m TWCManager.sim --pty --units 2 --protocol 1 --max-amps 80 -v
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import Any

from ..twc.consolelog import describe
from ..twc.messages import Message
from .runner import SimBus, Sniffer, open_pty
from .twc import CAR_MODES, Car, SimulatedTWC

STATUS_INTERVAL_S = 5.0


def _hex_id(text: str) -> int:
    try:
        value = int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a hex TWCID: {text!r}") from None
    if not 0 <= value <= 0xFFFF:
        raise argparse.ArgumentTypeError("a TWCID is 2 bytes (0000..FFFF)")
    return value


def _units(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 3:
        raise argparse.ArgumentTypeError("1 to 3 units (a master serves at most 3)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m TWCManager.sim",
        description="Simulated Tesla Wall Connector Gen2 slave(s) or a passive RS-485 sniffer.",
    )
    line = parser.add_mutually_exclusive_group(required=True)
    line.add_argument("--port", metavar="DEV", help="serial device or pyserial URL (9600 8N1)")
    line.add_argument("--pty", action="store_true", help="create a pseudo-terminal and print its path")
    parser.add_argument("--link", metavar="PATH", help="with --pty: symlink PATH to the pty")
    parser.add_argument("--mode", choices=("slave", "sniff"), default="slave")
    parser.add_argument("--protocol", type=int, choices=(1, 2), default=2)
    parser.add_argument("--max-amps", type=float, choices=(32.0, 80.0), default=32.0,
                        help="unit rating sent in linkready (32 EU, 80 US)")
    parser.add_argument("--id", type=_hex_id, default=0x032E, metavar="HEX",
                        help="TWCID of the first unit (default 032E); more units count up")
    parser.add_argument("--car", choices=CAR_MODES, default="charging")
    parser.add_argument("--units", type=_units, default=1, metavar="N", help="1 to 3 units")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per frame")
    return parser


def make_twcs(args: argparse.Namespace) -> list[SimulatedTWC]:
    twcs = []
    for index in range(args.units):
        twcs.append(
            SimulatedTWC(
                twcid=(args.id + index) & 0xFFFF,
                sign=(0x01 + index) & 0xFF,
                protocol=args.protocol,
                max_amps=args.max_amps,
                car=Car(args.car, car_max_amps=args.max_amps),
                # Debug requests carry no address: let one unit answer them.
                answer_debug=index == 0,
            )
        )
    return twcs


def _open_line(args: argparse.Namespace) -> Any:
    if args.pty:
        pair = open_pty(args.link)
        where = f"pty: {pair.slave_path}" + (f" link: {pair.link_path}" if pair.link_path else "")
        print(where, flush=True)
        return pair
    import serial

    return serial.serial_for_url(
        args.port, baudrate=9600, bytesize=8, parity="N", stopbits=1, timeout=0
    )


def _status(bus: SimBus) -> str:
    now = bus.clock()
    parts = []
    with bus.lock:
        for twc in bus.twcs:
            car = twc.car.mode if twc.car else "none"
            parts.append(
                "%04X: state %02X %05.2f/%05.2fA car %s %.1fkWh hb %d"
                % (twc.twcid, twc.state(now), twc.actual_amps(), twc.limit_amps, car, twc.kwh,
                   twc.heartbeats_received)
            )
    return " | ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.link and not args.pty:
        print("--link needs --pty", file=sys.stderr)
        return 2

    stop = threading.Event()
    # Ctrl-C / SIGTERM only set a flag; the main thread then shuts the worker down in order.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    try:
        line = _open_line(args)
    except Exception as exc:  # a missing device is a user error, not a traceback
        print(f"cannot open the line: {exc}", file=sys.stderr)
        return 1

    if args.mode == "sniff":
        worker: SimBus | Sniffer = Sniffer(line, sys.stdout)
    else:
        def on_frame(at: float, direction: str, msg: Message) -> None:
            if args.verbose:
                print(f"{time.strftime('%H:%M:%S')}: {direction} {describe(msg)}", flush=True)

        worker = SimBus(line, make_twcs(args), on_frame=on_frame)

    worker.start()
    try:
        while not stop.wait(STATUS_INTERVAL_S):
            if isinstance(worker, SimBus) and not args.verbose:
                print(f"{time.strftime('%H:%M:%S')}: {_status(worker)}", flush=True)
    finally:
        worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
