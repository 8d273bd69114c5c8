"""`python -m TWCManager.ctl [--config F] [--ipc-path DIR] [--timeout S] COMMAND…`:
send one IPC request to the running daemon, as the web pages do.

`status` prints the state for a person (getStatusJson, one line per thing).
Queries (getStatus, getLastTWCMsgResponse, dumpState, getStatusJson, getGreenStatus,
getGreenHistory, ping=TOKEN) print the reply.
Anything else is sent as a one-way command and prints nothing; ctl then sends a
`ping` and waits for its `pong`, because the daemon handles requests in order: the
pong means the command has been handled, and no pong means nobody is serving the
queue (`--no-wait` skips this). Several words are joined with spaces, so
`setScheduledAmps=16 startTime=21:00 endTime=07:00 days=127` works unquoted.

Exit status: 0 done; 1 the daemon is not running or not answering (one line on
stderr); 2 bad usage or configuration.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .config import ConfigError, find_and_load_config, ipc_path
from .ipc.commands import reply_mode
from .ipc.describe import describe_status
from .ipc_client import IpcClient, IpcError, IpcTimeout

PROG = "python -m TWCManager.ctl"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Send one request to the running TWCManager daemon.",
        epilog="Examples: status | getStatus | dumpState | chargeNow | chargeNowCancel | "
               "setNonScheduledAmps=16 | ping=hello")
    parser.add_argument("--config", help="TOML configuration file")
    parser.add_argument("--ipc-path", help="directory given to ftok() (overrides [ipc] path)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for a reply (default 5, as the PHP pages)")
    parser.add_argument("--no-wait", action="store_true",
                        help="for a command: do not wait until the daemon has handled it")
    parser.add_argument("command", nargs="+", help="request text, e.g. getStatus")
    args = parser.parse_args(argv)
    if not args.timeout > 0:
        parser.error("--timeout must be positive")
    return args


def _fail(message: str, status: int) -> int:
    # One line: scripts and cron mails read the first line only.
    print(f"twcmanager-ctl: {' '.join(str(message).split())}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    text = " ".join(args.command)
    try:
        cfg = find_and_load_config(args.config, {"ipc.path": args.ipc_path})
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}", 2)
    try:
        client = IpcClient(ipc_path(cfg))
        mode = reply_mode(text)
        if text == "status":
            status = json.loads(client.query("getStatusJson", timeout_s=args.timeout,
                                             packets=True))
            print(describe_status(status))
        elif mode is not None:
            print(client.query(text, timeout_s=args.timeout, packets=mode))
        else:
            client.command(text)
            if not args.no_wait:
                token = f"ctl-{os.getpid()}"
                try:
                    pong = client.query(f"ping={token}", timeout_s=args.timeout)
                except IpcTimeout as exc:
                    return _fail(f"{text[:40]!r} was queued, but {exc}; the daemon runs it if "
                                 f"it starts within a minute", 1)
                if pong != f"pong={token}":
                    return _fail(f"unexpected reply {pong[:40]!r} to the ping after the "
                                 f"command", 1)
    except ValueError as exc:
        return _fail(exc, 2)
    except IpcError as exc:
        return _fail(exc, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
