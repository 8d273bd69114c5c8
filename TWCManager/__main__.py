"""`python -m TWCManager`: the daemon, or `--demo` against a simulated TWC."""
from __future__ import annotations

import argparse
import logging
import signal
import sys

from .config import ConfigError, find_and_load_config
from .daemon import Daemon
from .logsetup import setup_logging

log = logging.getLogger("TWCManager")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="twcmanager",
        description="RS-485 load-sharing master for Tesla Wall Connector Gen2 units.")
    parser.add_argument("--config", help="TOML configuration file")
    parser.add_argument("--serial-port", help="RS-485 adapter: device, pty path or pyserial URL")
    parser.add_argument("--ipc-path", help="directory given to ftok() for the SysV queue")
    parser.add_argument("--settings-file", help="the key=value settings file")
    parser.add_argument("--green-command", help="command that prints the grid watts")
    parser.add_argument("--demo", action="store_true",
                        help="run against a simulated TWC with a charging car (no hardware)")
    parser.add_argument("--host", help="with --demo: the address its web page listens on "
                        "(default 127.0.0.1; 0.0.0.0 = reachable from other machines)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        help="console and file log level (debug shows the SHB lines)")
    return parser.parse_args(argv)


def overrides_from(args: argparse.Namespace) -> dict[str, str]:
    pairs = {"twc.serial_port": args.serial_port, "ipc.path": args.ipc_path,
             "settings.file": args.settings_file, "green.command": args.green_command,
             "log.level": args.log_level}
    return {key: value for key, value in pairs.items() if value is not None}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.host and not args.demo:
        print("TWCManager: --host is for --demo; the web app has its own ([web] host)",
              file=sys.stderr)
        return 2
    overrides = overrides_from(args)
    demo = None
    if args.demo:
        from .demo import Demo

        demo = Demo(host=args.host or "127.0.0.1")
        overrides = {**demo.overrides(), "log.level": args.log_level or "debug", **overrides}
    try:
        cfg = find_and_load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"TWCManager: configuration error: {exc}", file=sys.stderr)
        if demo:
            demo.close()
        return 2
    setup_logging(cfg.log.level_number, cfg.log.file, cfg.log.max_bytes, cfg.log.backups)
    try:
        if demo:
            demo.start(cfg)
        try:
            daemon = Daemon(cfg)
        except ConfigError as exc:     # e.g. an unreadable secret file
            print(f"TWCManager: configuration error: {exc}", file=sys.stderr)
            return 2
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: daemon.stop())
        daemon.run()
    finally:
        if demo:
            demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
