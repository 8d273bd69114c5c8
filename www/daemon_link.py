"""The pages' one way to the daemon: the SysV queue, with its errors made plain."""
from __future__ import annotations

import json
import logging

from flask import current_app

from .status import Status, StatusFormatError, parse_status

log = logging.getLogger("www")


class DaemonUnavailable(Exception):
    """TWCManager did not answer in time, or its queue is missing."""


def _twc() -> dict:
    return current_app.extensions["twc"]


def query(text: str) -> str:
    from TWCManager.ipc.commands import reply_mode
    from TWCManager.ipc_client import IpcError

    # The daemon's command table says which queries answer in packets.
    packets = bool(reply_mode(text))
    try:
        return _twc()["peer"].query(text, timeout_s=_twc()["timeout_s"], packets=packets)
    except IpcError as exc:
        log.warning("Daemon query %r failed: %s", text, exc)
        raise DaemonUnavailable(str(exc)) from None


def commands(*texts: str) -> None:
    from TWCManager.ipc_client import IpcError

    for text in texts:
        try:
            _twc()["peer"].command(text)
        except IpcError as exc:
            log.warning("Daemon command %r failed: %s", text, exc)
            raise DaemonUnavailable(str(exc)) from None


def get_status() -> Status:
    text = query("getStatus")
    try:
        return parse_status(text)
    except StatusFormatError as exc:
        log.error("Unexpected getStatus reply %r: %s", text[:120], exc)
        raise DaemonUnavailable(f"unexpected reply from TWCManager: {exc}") from None


def query_json(text: str):
    """A query whose reply is JSON (getStatusJson, getTariffStatus …), decoded."""
    try:
        return json.loads(query(text))
    except ValueError as exc:
        raise DaemonUnavailable(f"unexpected reply from TWCManager: {exc}") from None


def get_status_json() -> dict:
    return query_json("getStatusJson")
