"""`pi30 [--config F] [--port DEV] [--porttype serial|hidraw] [--baud N] [--timeout-s S] [--json]
COMMAND` (decisions.md §6.1): read and command a PI30 inverter.

    status                                   mode, grid, load, battery, PV, priorities, warnings
    raw CMD                                  one command, its answer's payload
    set output-priority utility|solar|sbu
    set charger-priority utility|solar|solar-utility|solar-only

Exit status: 0 done; 255 and `Inverter unreachable` on stdout when no valid answer came within
the timeout; 3 when the inverter answered NAK (`Inverter refused …`); 4 when another process
holds the port; 2 for a usage or configuration error. `set` sends nothing when the value is
already in force, and exits 0 only once QPIRI reads the new value back.
"""
from __future__ import annotations

import argparse
import json
import sys

from . import codec
from .inverter import SETTINGS, describe, read_status, set_priority
from .link import InverterBusy, NoAnswer, Pi30Link, Refused

EXIT_UNREACHABLE, EXIT_REFUSED, EXIT_BUSY, EXIT_USAGE = 255, 3, 4, 2
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pi30", description="Read and command a PI30 inverter.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n  status\n  raw CMD\n  set output-priority utility|solar|sbu\n"
               "  set charger-priority utility|solar|solar-utility|solar-only\n\n"
               "exit status: 0 done, 255 inverter unreachable, 3 refused (NAK), 4 port busy, "
               "2 usage")
    parser.add_argument("--config", help="TOML configuration file")
    parser.add_argument("--port", help="serial or hidraw device (overrides [pi30] port)")
    parser.add_argument("--porttype", choices=("serial", "hidraw"))
    parser.add_argument("--baud", type=int)
    parser.add_argument("--timeout-s", type=float)
    parser.add_argument("--json", action="store_true", help="status as one JSON object")
    parser.add_argument("command", nargs="+",
                        help="see the commands below")
    args = parser.parse_args(argv)
    words = args.command
    ok = (words == ["status"] or (len(words) == 2 and words[0] == "raw")
          or (len(words) == 3 and words[0] == "set" and words[1] in SETTINGS
              and words[2] in SETTINGS[words[1]][2]))
    if not ok:
        parser.error("COMMAND must be `status`, `raw CMD`, `set output-priority "
                     "utility|solar|sbu` or `set charger-priority "
                     "utility|solar|solar-utility|solar-only`")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ..config import ConfigError, find_and_load_config

    overrides = {"pi30.port": args.port, "pi30.porttype": args.porttype,
                 "pi30.baud": args.baud, "pi30.timeout_s": args.timeout_s}
    try:
        cfg = find_and_load_config(args.config,
                                   {k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        print(f"pi30: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not cfg.pi30.port:
        print("pi30: no inverter port: set [pi30] port or give --port", file=sys.stderr)
        return EXIT_USAGE
    link = Pi30Link(cfg.pi30.port, porttype=cfg.pi30.porttype or None, baud=cfg.pi30.baud,
                    timeout_s=cfg.pi30.timeout_s)
    words = args.command
    try:
        if words[0] == "status":
            status = read_status(link)
            print(json.dumps(status) if args.json else describe(status))
        elif words[0] == "raw":
            print(link.exchange(words[1]))
        else:
            print(set_priority(link, words[1], words[2]))
    except NoAnswer as exc:
        print("Inverter unreachable")
        print(f"pi30: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except Refused as exc:
        print(str(exc))
        return EXIT_REFUSED
    except InverterBusy as exc:
        print(f"pi30: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except codec.ParseError as exc:
        print("Inverter unreachable")
        print(f"pi30: unexpected answer: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        link.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
