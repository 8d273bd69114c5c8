"""The web door: optional basic auth, cross-site request refusal, CSRF tokens.

Old bookmarks (`/TWCapi.php?Boost=1`) change state with a GET, so a token cannot
protect them; browsers say where a request comes from (`Sec-Fetch-Site`, `Origin`),
and a cross-site one is refused. Forms also carry a per-session token.
"""
from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, abort, request, session
from werkzeug.security import check_password_hash

CSRF_FIELD = "csrf_token"


def install(app: Flask, username: str, password_hash: str) -> None:
    @app.before_request
    def _basic_auth():
        if not username:
            return None
        auth = request.authorization
        if (auth is not None and auth.type == "basic"
                and hmac.compare_digest(auth.username or "", username)
                and check_password_hash(password_hash, auth.password or "")):
            return None
        return Response("Authentication required\n", 401,
                        {"WWW-Authenticate": 'Basic realm="TWCManager", charset="UTF-8"'})

    app.jinja_env.globals["csrf_token"] = csrf_token


def cross_site() -> bool:
    """True when a browser tells us the request was started by another site."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin:
        return urlsplit(origin).netloc != request.host
    return False  # curl, scripts, Home Assistant: no browser, no cross-site risk


def refuse_cross_site() -> None:
    if cross_site():
        abort(403, "cross-site request refused")


def csrf_token() -> str:
    token = session.get(CSRF_FIELD)
    if not token:
        token = session[CSRF_FIELD] = secrets.token_urlsafe(24)
    return token


def check_csrf() -> None:
    refuse_cross_site()
    sent = request.form.get(CSRF_FIELD, "")
    if not sent or not hmac.compare_digest(sent, session.get(CSRF_FIELD, "")):
        abort(403, "form expired or sent from another site: reload the page and try again")
