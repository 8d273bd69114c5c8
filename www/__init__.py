"""The web app: replaces index.php and TWCapi.php, talks to the daemon only through
the SysV queue (decisions.md §1). `create_app` is the composition root; tests pass
their own config and queue peer."""
from __future__ import annotations

import logging
import secrets
from typing import Protocol

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from TWCManager.config import Config, ipc_path

from . import security

log = logging.getLogger("www")


class QueuePeer(Protocol):
    """What the pages need from the daemon (TWCManager.ipc_client.IpcClient)."""

    def query(self, text: str, timeout_s: float = 2.0, packets: bool = False) -> str: ...

    def command(self, text: str) -> None: ...


def create_app(cfg: Config | None = None, peer: QueuePeer | None = None) -> Flask:
    cfg = cfg or Config()
    app = Flask(__name__)
    # Sessions only carry the CSRF token: a fresh key per start is enough.
    app.config.update(SECRET_KEY=secrets.token_bytes(32), SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_HTTPONLY=True)
    if peer is None:
        from TWCManager.ipc_client import IpcClient

        peer = IpcClient(path=str(ipc_path(cfg)))
    app.json.sort_keys = False  # LennyBo's JSON keeps its key order
    app.extensions["twc"] = {"peer": peer, "cfg": cfg, "timeout_s": cfg.web.ipc_timeout_s}
    security.install(app, cfg.web)

    from . import (api, api_v1, api_v1_commands, dashboard, goal, inverter,  # noqa: F401
                   legacy, modes, pages, tariff)

    app.register_blueprint(legacy.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(inverter.bp)
    app.register_blueprint(tariff.bp)
    app.register_blueprint(goal.bp)
    app.register_blueprint(modes.bp)
    # Before /api: its catch-all route would otherwise answer /api/v1/… with 404.
    app.register_blueprint(api_v1.bp, url_prefix="/api/v1")
    app.register_blueprint(api.bp, url_prefix="/api")

    @app.errorhandler(Exception)
    def _error(exc):
        # No stack trace ever reaches a client; the log has it.
        if isinstance(exc, HTTPException):
            code, message = exc.code or 500, exc.description
        else:
            log.exception("Error serving %s", request.path)
            code, message = 500, "internal error; see the web app's log"
        if request.path.startswith("/api/") or request.path == "/TWCapi.php" \
                or request.accept_mimetypes.best == "application/json":
            return jsonify(error=message), code
        return (f"<!doctype html><title>{code}</title><p>{_escape(message)}</p>"
                f"<p><a href='/'>Back</a></p>", code, {"Content-Type": "text/html; charset=utf-8"})

    return app


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))
