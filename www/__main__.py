"""`python -m www`: the web app under waitress (a production WSGI server)."""
from __future__ import annotations

import argparse
import getpass
import logging
import sys

from TWCManager.config import ConfigError, find_and_load_config
from TWCManager.logsetup import setup_logging

MAX_BODY_BYTES = 1024 * 1024


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m www",
                                     description="TWCManager web pages and JSON API.")
    parser.add_argument("--config", help="TOML configuration file")
    parser.add_argument("--ipc-path", help="directory given to ftok() (the daemon's ipc.path)")
    parser.add_argument("--host", help="address to listen on")
    parser.add_argument("--port", type=int, help="TCP port")
    parser.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")
    parser.add_argument("--hash-password", action="store_true",
                        help="print a password_hash for [web] and exit")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.hash_password:
        from werkzeug.security import generate_password_hash

        password = getpass.getpass("Password: ")
        if not password or password != getpass.getpass("Again: "):
            print("passwords differ or are empty", file=sys.stderr)
            return 1
        print(generate_password_hash(password))
        return 0
    overrides = {"ipc.path": args.ipc_path, "web.host": args.host, "web.port": args.port}
    try:
        cfg = find_and_load_config(args.config, {k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        print(f"www: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg.log.level_number)
    from waitress import serve

    from . import create_app

    try:
        app = create_app(cfg)
    except ConfigError as exc:     # e.g. an unreadable api_token_file: never serve it open
        print(f"www: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("www").info("Serving on http://%s:%d/", cfg.web.host, cfg.web.port)
    # No form or API body here comes near 1 MiB; waitress would otherwise buffer up to 1 GiB.
    try:
        serve(app, host=cfg.web.host, port=cfg.web.port, threads=args.threads,
              expose_tracebacks=False, ident="TWCManager", max_request_body_size=MAX_BODY_BYTES)
    except OSError as exc:   # the port taken, or not allowed: one line, no traceback
        print(f"www: cannot listen on {cfg.web.host}:{cfg.web.port}: {exc.strerror or exc} "
              "(another web server on that port? set [web] port or --port)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
