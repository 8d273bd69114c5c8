"""The web door under attack (www/security.py, www/api.py): basic auth that checks the
password hash once per credential, the same way whatever name is sent, one check at a time
and with any UTF-8 name; JSON bodies that cannot cause a 500; and the Host check that stops
DNS rebinding. Flask test client or a real waitress server, with the fake daemon of
tests/fake_peer.py behind the real IpcClient, as in tests/test_www.py."""
from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import threading

import pytest
from waitress.server import create_server
from werkzeug.security import generate_password_hash

from www import security

from .test_www import basic, make_app, sent

# One pbkdf2 round set: fast tests where the hash's cost does not matter.
CHEAP = "pbkdf2:sha256:1000"
DEADLINE_S = 20.0
GOOD_BODY = {"chargeNowRate": 16, "chargeNowDuration": 3600}


def auth_app(daemon, username="garage", password="s3cret", method=CHEAP, **overrides):
    return make_app(daemon, **{"web.username": username,
                               "web.password_hash": generate_password_hash(password, method),
                               **overrides})


def raw_basic(user_and_password: bytes) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(user_and_password).decode()}


class Server:
    """The app under a real threaded waitress on 127.0.0.1 (an ephemeral port)."""

    def __init__(self, app, threads: int) -> None:
        self.server = create_server(app, host="127.0.0.1", port=0, threads=threads)
        self.port = self.server.effective_port
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def request(self, path: str, headers: dict) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE_S)
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def stop(self) -> None:
        def close_all():  # runs in the loop thread: no race with its poll
            for dispatcher in list(self.server._map.values()):
                dispatcher.close()

        self.server.trigger.pull_trigger(close_all)
        self.thread.join(DEADLINE_S)
        self.server.task_dispatcher.shutdown(timeout=DEADLINE_S)
        assert not self.thread.is_alive()


# ---------------------------------------------------------------- auth: cost and oracle

def test_good_credentials_are_hash_checked_once_then_remembered(daemon):
    app = auth_app(daemon)
    auth, client = app.extensions["twc_auth"], app.test_client()
    for url in ("/api/getStatus", "/api/getStatus", "/", "/api/getSlaveTWCs"):
        assert client.get(url, headers=basic("garage", "s3cret")).status_code == 200
    assert auth.hash_checks == 1  # the dashboard's 2 s poll costs an HMAC, not a scrypt


def test_remembered_credential_is_checked_again_after_the_ttl(daemon):
    app = auth_app(daemon)
    auth, client = app.extensions["twc_auth"], app.test_client()
    now_s = [1000.0]
    auth.clock = lambda: now_s[0]
    assert client.get("/", headers=basic("garage", "s3cret")).status_code == 200
    now_s[0] += security.AUTH_CACHE_TTL_S - 1
    assert client.get("/", headers=basic("garage", "s3cret")).status_code == 200
    assert auth.hash_checks == 1
    now_s[0] += 2
    assert client.get("/", headers=basic("garage", "s3cret")).status_code == 200
    assert auth.hash_checks == 2


def test_a_remembered_credential_does_not_let_another_in(daemon):
    app = auth_app(daemon)
    auth, client = app.extensions["twc_auth"], app.test_client()
    assert client.get("/", headers=basic("garage", "s3cret")).status_code == 200
    for user, password in (("garage", "s3cre"), ("garag", "es3cret"), ("garages", "3cret")):
        assert client.get("/", headers=basic(user, password)).status_code == 401
    assert auth.hash_checks == 4


@pytest.mark.parametrize("user, password", [("other", "wrong"), ("other", "s3cret"),
                                            ("garage", "wrong"), ("", ""), ("g" * 300, "x")])
def test_every_failure_costs_exactly_one_hash_check_whatever_the_name(daemon, user, password):
    # No username oracle: a wrong name is not answered sooner (with no hash check) than a
    # wrong password. Failures are not remembered, so each attempt pays again.
    app = auth_app(daemon)
    auth, client = app.extensions["twc_auth"], app.test_client()
    for attempt in (1, 2, 3):
        assert client.get("/api/getStatus", headers=basic(user, password)).status_code == 401
        assert auth.hash_checks == attempt
    assert daemon.queries == []


def test_parallel_wrong_passwords_run_one_hash_check_at_a_time(daemon):
    # werkzeug's default scrypt: ~30 MiB a check, which is what the lock bounds.
    app = auth_app(daemon, method="scrypt")
    auth = app.extensions["twc_auth"]
    senders = 8
    arrived, all_arrived, count_lock = [0], threading.Event(), threading.Lock()
    original_check, original_hash = auth.check, auth._check_hash

    def check(username, password):
        with count_lock:
            arrived[0] += 1
            if arrived[0] == senders:
                all_arrived.set()
        return original_check(username, password)

    def gated_hash(password):
        # No check starts before all 8 requests are inside check(): they truly contend.
        assert all_arrived.wait(DEADLINE_S), "the requests did not arrive in parallel"
        return original_hash(password)

    auth.check, auth._check_hash = check, gated_hash
    server = Server(app, threads=senders)
    try:
        results: list[int] = []
        start = threading.Barrier(senders)

        def send(i):
            start.wait(DEADLINE_S)
            results.append(server.request("/api/getStatus", basic("garage", f"guess{i}"))[0])

        threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEADLINE_S)
        assert not any(t.is_alive() for t in threads)
    finally:
        server.stop()
    assert results == [401] * senders
    assert auth.hash_checks == senders
    assert auth.max_concurrent_checks == 1


# -------------------------------------------------------------------- auth: UTF-8 names

@pytest.mark.parametrize("credentials", ["Jürgen:s3cret".encode(), "garage:pässwört".encode(),
                                         "用户:密码".encode(), b"J\xfcrgen:s3cret",
                                         b"\xff\xfe:\x80"])
def test_non_ascii_credentials_sent_get_401_not_500(daemon, credentials):
    app = auth_app(daemon)
    response = app.test_client().get("/api/getStatus", headers=raw_basic(credentials))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_non_ascii_configured_username_can_log_in(daemon):
    app = auth_app(daemon, username="Jürgen", password="pässwört")
    client = app.test_client()
    assert client.get("/api/getStatus", headers=basic("Jürgen", "pässwört")).status_code == 200
    for user, password in (("Jürgen", "passwort"), ("Jurgen", "pässwört"),
                           ("JÜRGEN", "pässwört")):
        assert client.get("/api/getStatus", headers=basic(user, password)).status_code == 401


def test_non_ascii_csrf_token_is_403_not_500(daemon):
    client = make_app(daemon).test_client()
    response = client.post("/index.php", data={"csrf_token": "jëton", "submit": "Save"})
    assert response.status_code == 403
    assert sent(daemon) == []


# ------------------------------------------------------------------------- JSON bodies

def _object_with(value: str) -> bytes:
    return ('{"chargeNowRate": %s, "chargeNowDuration": 3600}' % value).encode()


MAX_BYTES = 64 * 1024
BAD_BODIES = [
    pytest.param(_object_with("NaN"), 400, id="NaN"),
    pytest.param(_object_with("Infinity"), 400, id="Infinity"),
    pytest.param(_object_with("-Infinity"), 400, id="-Infinity"),
    pytest.param(_object_with("1e309"), 400, id="1e309"),
    pytest.param(_object_with("-1e309"), 400, id="-1e309"),
    pytest.param(_object_with("1" * 5000), 400, id="5000-digit int"),
    pytest.param(b'{"chargeNowRate": 16, "x": NaN, "chargeNowDuration": 3600}', 400,
                 id="NaN elsewhere"),
    pytest.param(b"[" * 50_000, 400, id="nested 50000 (under the size cap)"),
    pytest.param(b'{"a":' * 10_000, 400, id="nested objects"),
    pytest.param(b"[" * 100_000, 413, id="nested 100000 (over the size cap)"),
    pytest.param(_object_with("16" + " " * MAX_BYTES), 413, id="65 KiB of spaces"),
    pytest.param(b'{"chargeNowRate": 16, "chargeNowDuration": 3600, "x": "\xff"}', 400,
                 id="not UTF-8"),
]


@pytest.mark.parametrize("body, status", BAD_BODIES)
def test_charge_now_bad_body_is_4xx_json(daemon, body, status):
    client = make_app(daemon).test_client()
    response = client.post("/api/chargeNow", data=body, content_type="application/json")
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert response.get_json()["error"]
    assert sent(daemon) == []


def test_charge_now_body_without_length_is_capped(daemon):
    # A chunked body has no Content-Length: the read itself must stop at the cap.
    client = make_app(daemon).test_client()
    body = _object_with("16" + " " * MAX_BYTES)
    response = client.post("/api/chargeNow", input_stream=io.BytesIO(body),
                           content_type="application/json",
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413 and "larger than" in response.get_json()["error"]
    assert sent(daemon) == []


def test_charge_now_good_body_just_under_the_cap_works(daemon):
    client = make_app(daemon).test_client()
    body = json.dumps(GOOD_BODY).encode()
    body += b" " * (MAX_BYTES - len(body))
    response = client.post("/api/chargeNow", data=body, content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert sent(daemon) == ["chargeNow=16,3600"]


# -------------------------------------------------------------------------- Host check

@pytest.fixture
def machine(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "GaragePi")
    monkeypatch.setattr("socket.getfqdn", lambda *a: "garagepi.home.example.")


REBIND = {"Host": "evil.example", "Origin": "http://evil.example",
          "Sec-Fetch-Site": "same-origin"}


@pytest.mark.parametrize("method, url", [("get", "/TWCapi.php?Boost=1"),
                                         ("get", "/TWCapi.php?GetStatus=1"),
                                         ("get", "/api/getStatus"), ("get", "/"),
                                         ("get", "/index.php"), ("post", "/api/chargeNow"),
                                         ("get", "/static/style.css")])
def test_dns_rebinding_host_is_refused_before_anything(daemon, machine, method, url):
    for app in (make_app(daemon), auth_app(daemon)):
        response = getattr(app.test_client(), method)(url, headers=REBIND, json=GOOD_BODY)
        assert response.status_code == 400, url  # before auth: not a 401
        text = response.get_data(as_text=True)
        assert "evil.example" in text and "[web] allowed_hosts" in text
    assert sent(daemon) == [] and daemon.queries == []


@pytest.mark.parametrize("host", ["localhost", "localhost:8080", "LocalHost.", "pi.localhost",
                                  "127.0.0.1", "127.0.0.1:8080", "192.168.1.20:8080",
                                  "[::1]:8080", "[::1]", "[fe80::1]:80", "::1",
                                  "garagepi", "GaragePi:8080", "garagepi.local",
                                  "garagepi.local.:8080", "garagepi.home.example"])
def test_default_hosts_are_allowed(daemon, machine, host):
    response = make_app(daemon).test_client().get("/api/getStatus", headers={"Host": host})
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.nip.io", "localhost.evil.example",
                                  "garagepi.evil.example", "evillocalhost", "garagepi.locals",
                                  "", "[::1", "0x7f.1", "garagepi.local.evil.example"])
def test_other_hosts_are_refused(daemon, machine, host):
    response = make_app(daemon).test_client().get("/api/getStatus", headers={"Host": host})
    assert response.status_code == 400
    assert "allowed_hosts" in response.get_json()["error"]


@pytest.mark.parametrize("host, status", [("garage.example.net", 200),
                                          ("GARAGE.Example.Net.:8080", 200),
                                          ("x.garage.example.net", 400),
                                          ("home.example", 200), ("a.b.home.example", 200),
                                          ("evilhome.example", 400), ("lan.example", 200),
                                          ("pi.lan.example", 200), ("evil.example", 400)])
def test_allowed_hosts_lists_names_and_domains(daemon, machine, host, status):
    app = make_app(daemon, **{"web.allowed_hosts": ["garage.example.net", ".home.example",
                                                    "*.lan.example"]})
    assert app.test_client().get("/api/getStatus", headers={"Host": host}).status_code == status


def test_star_turns_the_host_check_off(daemon):
    app = make_app(daemon, **{"web.allowed_hosts": ["*"]})
    response = app.test_client().get("/TWCapi.php?Boost=1", headers=REBIND)
    assert response.status_code in (302, 303)


def test_refused_hosts_are_logged_at_most_once_a_minute(daemon, caplog):
    client = make_app(daemon).test_client()
    with caplog.at_level(logging.WARNING, logger="www"):
        for host in ("evil.example", "evil.example", "other.example"):
            assert client.get("/", headers={"Host": host}).status_code == 400
    lines = [r.getMessage() for r in caplog.records if "allowed_hosts" in r.getMessage()]
    assert len(lines) == 1 and "evil.example" in lines[0]


def test_real_server_refuses_a_rebinding_host_and_serves_its_own(daemon, machine):
    server = Server(make_app(daemon), threads=2)
    try:
        status, body = server.request("/TWCapi.php?Boost=1", REBIND)
        assert status == 400 and b"evil.example" in body
        ok, _ = server.request("/api/getStatus", {"Host": f"127.0.0.1:{server.port}"})
        named, _ = server.request("/api/getStatus", {"Host": f"garagepi.local:{server.port}"})
        assert (ok, named) == (200, 200)
    finally:
        server.stop()
    assert sent(daemon) == []
