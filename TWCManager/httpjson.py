"""One JSON request over HTTP with the standard library, its failures as one exception: for the
outside services the daemon asks (RTE's Tempo API, Home Assistant, forecast.solar)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

MAX_BODY_BYTES = 1024 * 1024


class HttpJsonError(Exception):
    def __init__(self, message: str, status: int | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


def request_json(request: urllib.request.Request, timeout_s: float, who: str) -> dict:
    """The JSON object `request` answers; HttpJsonError (naming `who`) for anything else."""
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read(MAX_BODY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise HttpJsonError(f"{who} answered HTTP {exc.code}{_detail(exc)}", exc.code,
                            _retry_after(exc.headers.get("Retry-After"))) from None
    except (OSError, ValueError) as exc:        # refused, timeout, DNS, bad URL
        raise HttpJsonError(f"{who} unreachable: {exc}") from None
    if len(raw) > MAX_BODY_BYTES:
        raise HttpJsonError(f"{who} answer larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise HttpJsonError(f"{who} answer is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise HttpJsonError(f"{who} answer is not a JSON object")
    return body


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read(4096))
    except (ValueError, AttributeError, OSError):
        return ""
    if not isinstance(body, dict):
        return ""
    text = " ".join(str(body[k]) for k in ("error", "error_description", "message") if k in body)
    return f": {text}" if text else ""


def _retry_after(text: str | None) -> float | None:
    try:
        return max(float(text), 0.0) if text else None
    except ValueError:
        return None
