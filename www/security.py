"""The web door: Host check, optional basic auth, cross-site request refusal, CSRF tokens.

Host check (before anything else): a page on evil.example whose name is made to resolve to
this Pi (DNS rebinding) is "same-origin" for the browser, so Origin/Sec-Fetch-Site cannot
catch it; only the Host header tells. Allowed without configuration: IP-address literals
(they cannot be rebound), localhost and *.localhost, this machine's hostname, its mDNS
name <hostname>.local and its FQDN; plus `[web] allowed_hosts` (".example.net" also allows
its subdomains; "*" turns the check off). A request without a Host header is no browser's.

Basic auth: werkzeug's scrypt hash costs ~130 ms of CPU and ~30 MiB per check, too much
for every request (the dashboard polls every 2 s). So the good credential is checked once,
then remembered for AUTH_CACHE_TTL_S as HMAC-SHA256(per-process random key, username,
password): a one-entry cache, as there is one user; neither the password nor an offline-
guessable hash of it is kept. Failures are not remembered. Every other request runs exactly
one hash check, whether the name matched or not, so timing does not tell a right name from
a wrong one; and only one check runs at a time (a lock), so a flood of wrong passwords
queues (each waitress thread waits its turn) instead of taking 30 MiB per thread.

Bearer token (`[web] api_token_file`, decisions §6.1): once set, every /api/v1/ request must
carry `Authorization: Bearer <token>` (401 otherwise), and basic auth no longer applies there,
as Home Assistant sends one Authorization header. The file is read at start; a missing or
empty file stops the web app rather than leaving the API open.

Old bookmarks (`/TWCapi.php?Boost=1`) change state with a GET, so a token cannot
protect them; browsers say where a request comes from (`Sec-Fetch-Site`, `Origin`),
and a cross-site one is refused. Forms also carry a per-session token.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from flask import Flask, Response, abort, request, session
from werkzeug.security import check_password_hash

from TWCManager.config import WebConfig
from TWCManager.config_checks import is_ip_literal

CSRF_FIELD = "csrf_token"
API_V1_PREFIX = "/api/v1/"
AUTH_CACHE_TTL_S = 8 * 3600   # a working day; then the password is checked again
HOST_LOG_INTERVAL_S = 60.0    # at most one "Host refused" log line a minute

log = logging.getLogger("www")


def install(app: Flask, web: WebConfig) -> None:
    hosts = HostCheck(web.allowed_hosts)
    app.extensions["twc_hosts"] = hosts
    # Registered first: a refused Host is answered before auth and before any route.
    app.before_request(hosts.before_request)
    bearer = BearerToken(read_token_file(web.api_token_file)) if web.api_token_file else None
    if bearer:
        app.before_request(bearer.before_request)
    if web.username:
        auth = BasicAuth(web.username, web.password_hash, skip_api_v1=bearer is not None)
        app.extensions["twc_auth"] = auth
        app.before_request(auth.before_request)
    app.jinja_env.globals["csrf_token"] = csrf_token


# ------------------------------------------------------------------------ Host check

def machine_names() -> set[str]:
    """The names this machine answers to without configuration."""
    hostname = socket.gethostname().lower().rstrip(".")
    names = {"localhost", hostname, socket.getfqdn().lower().rstrip(".")}
    if hostname:
        names.add(hostname.split(".")[0] + ".local")  # mDNS uses the first label
    return {n for n in names if n}


def host_name(host_header: str) -> str:
    """'Garage.example.:8080' -> 'garage.example', '[::1]:8080' -> '::1'."""
    host = host_header.strip()
    if host.startswith("["):
        inside, bracket, _port = host[1:].partition("]")
        host = inside if bracket else host  # "[::1" stays as sent and matches nothing
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    # More than one colon and no brackets: an IPv6 literal without a port; keep it whole.
    return host.rstrip(".").lower()


class HostCheck:
    def __init__(self, allowed_hosts: Iterable[str]) -> None:
        entries = {h.strip().rstrip(".").lower() for h in allowed_hosts} - {""}
        self.off = "*" in entries
        # "*.example.net" is read as ".example.net", the form people also write.
        entries = {h.removeprefix("*") for h in entries if h != "*"}
        self.exact = machine_names() | {h for h in entries if not h.startswith(".")}
        # ".example.net" allows example.net and every name under it; "localhost" likewise.
        self.suffixes = tuple({".localhost"} | {h for h in entries if h.startswith(".")})
        self._logged_at: float | None = None
        log.info("Web: Host names accepted: %s", "any (allowed_hosts has \"*\")" if self.off
                 else ", ".join(sorted(self.exact) + ["*" + s for s in sorted(self.suffixes)]
                                + ["IP addresses"]))

    def allowed(self, host_header: str) -> bool:
        if self.off:
            return True
        name = host_name(host_header)
        return (is_ip_literal(name) or name in self.exact
                or any(name.endswith(s) or name == s[1:] for s in self.suffixes))

    def before_request(self):
        sent = request.headers.get("Host")
        if sent is None or self.allowed(sent):
            return None
        shown = host_name(sent)[:100]
        now_s = time.monotonic()
        if self._logged_at is None or now_s - self._logged_at >= HOST_LOG_INTERVAL_S:
            self._logged_at = now_s
            log.warning("Refused a request for Host %r from %s (add it to [web] allowed_hosts "
                        "if this is a name of this machine; further refusals are not logged "
                        "for %.0f s)", shown, request.remote_addr, HOST_LOG_INTERVAL_S)
        abort(400, f"Host name '{shown}' is not allowed here. If it is a name of this "
                   "TWCManager, add it to [web] allowed_hosts in twcmanager.toml and restart "
                   "the web pages.")


# ------------------------------------------------------------------------ bearer token

def read_token_file(path: str) -> bytes:
    """The API token: the file's first line. ConfigError when unreadable, empty or short."""
    from TWCManager.config import ConfigError, read_secret

    token = read_secret(path, "web.api_token_file").encode("utf-8")
    if len(token) < 16:
        raise ConfigError(f"web.api_token_file: {path} holds no token of 16 characters or "
                          "more; make one with: openssl rand -hex 32")
    return token


class BearerToken:
    """/api/v1/ only with `Authorization: Bearer <token>`."""

    def __init__(self, token: bytes) -> None:
        self.token = token

    def before_request(self):
        if not request.path.startswith(API_V1_PREFIX):
            return None
        kind, _, sent = request.headers.get("Authorization", "").partition(" ")
        # Bytes: compare_digest raises TypeError on non-ASCII str.
        if kind.lower() == "bearer" and hmac.compare_digest(
                sent.strip().encode("utf-8", "surrogatepass"), self.token):
            return None
        return Response('{"error": "send Authorization: Bearer <token> ([web] api_token_file)"}\n',
                        401, {"WWW-Authenticate": 'Bearer realm="TWCManager"',
                              "Content-Type": "application/json"})


# ------------------------------------------------------------------------ basic auth

class BasicAuth:
    """Checks Authorization: Basic against the configured name and password hash.

    `hash_checks` and `max_concurrent_checks` count password-hash verifications, for tests
    and for anyone wondering where the CPU goes."""

    def __init__(self, username: str, password_hash: str,
                 clock: Callable[[], float] = time.monotonic, skip_api_v1: bool = False) -> None:
        self.skip_api_v1 = skip_api_v1     # the bearer token guards /api/v1/ instead
        self.username_bytes = username.encode("utf-8")
        self.password_hash = password_hash
        self.clock = clock
        self._key = secrets.token_bytes(32)
        # (digest, expiry in clock seconds) of the credential last verified, or None. One
        # slot is enough: there is one user, so only one credential can ever verify.
        self._verified: tuple[bytes, float] | None = None
        self._hash_lock = threading.Lock()   # one scrypt at a time bounds memory
        self._stats_lock = threading.Lock()
        self._running = 0
        self.hash_checks = 0
        self.max_concurrent_checks = 0

    def before_request(self):
        if self.skip_api_v1 and request.path.startswith(API_V1_PREFIX):
            return None
        auth = request.authorization
        if auth is not None and auth.type == "basic" \
                and self.check(auth.username or "", auth.password or ""):
            return None
        return Response("Authentication required\n", 401,
                        {"WWW-Authenticate": 'Basic realm="TWCManager", charset="UTF-8"'})

    def check(self, username: str, password: str) -> bool:
        # Bytes, not str: compare_digest refuses non-ASCII str (a 500 for "Jürgen").
        name = username.encode("utf-8", "surrogatepass")
        secret = password.encode("utf-8", "surrogatepass")
        # The length prefix keeps ("ab", "c") and ("a", "bc") apart.
        digest = hmac.new(self._key, len(name).to_bytes(4, "big") + name + secret,
                          hashlib.sha256).digest()
        if self._remembered(digest):
            return True
        with self._hash_lock:
            # Parallel first requests of one browser (page, CSS, JS): one check serves all.
            if self._remembered(digest):
                return True
            name_ok = hmac.compare_digest(name, self.username_bytes)
            password_ok = self._check_hash(password)  # always: a wrong name costs the same
            if not (name_ok & password_ok):
                return False  # failures are not remembered: each one costs a check
            self._verified = (digest, self.clock() + AUTH_CACHE_TTL_S)
        return True

    def _remembered(self, digest: bytes) -> bool:
        verified = self._verified  # one read: another thread may replace it
        return (verified is not None and self.clock() < verified[1]
                and hmac.compare_digest(digest, verified[0]))

    def _check_hash(self, password: str) -> bool:
        with self._stats_lock:
            self.hash_checks += 1
            self._running += 1
            self.max_concurrent_checks = max(self.max_concurrent_checks, self._running)
        try:
            return check_password_hash(self.password_hash, password)
        finally:
            with self._stats_lock:
                self._running -= 1


# ---------------------------------------------------------------- cross-site, CSRF

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
    sent = request.form.get(CSRF_FIELD, "").encode("utf-8", "surrogatepass")
    # Bytes: compare_digest raises TypeError (a 500) on non-ASCII str.
    expected = str(session.get(CSRF_FIELD, "")).encode()
    if not sent or not hmac.compare_digest(sent, expected):
        abort(403, "form expired or sent from another site: reload the page and try again")
