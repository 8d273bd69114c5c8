"""A loopback fake of RTE's Tempo API (tempo.md §2): the token endpoint (HTTP Basic client
credentials) and the calendars endpoint (Bearer), with the exact JSON shapes, newest first,
midnight-to-midnight dates with +01:00/+02:00, and faults to inject.

    with FakeRte({date(2024, 12, 3): "RED"}) as rte:
        client = RteClient(rte.url, "id", "secret")
        rte.fail_next = [429]          # the next requests answer these statuses
        rte.colours[date(2024, 12, 4)] = "BLUE"   # "published"
"""
from __future__ import annotations

import base64
import json
import threading
import time
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
CLIENT_ID, CLIENT_SECRET = "test-client", "test-secret"


class FakeRte:
    def __init__(self, colours: dict[date, str] | None = None, expires_in_s: int = 7200) -> None:
        self.colours = dict(colours or {})
        self.expires_in_s = expires_in_s
        self.fail_next: list[int] = []        # statuses to answer, in order, instead of data
        self.retry_after_s: int | None = None
        self.delay_s = 0.0                     # a slow server (timeouts)
        self.tokens: list[str] = []
        self.requests: list[tuple[str, str]] = []   # (method, path with query)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeRte:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def calendar_requests(self) -> list[str]:
        return [path for method, path in self.requests if "tempo_like_calendars" in path]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            def _fault(self) -> bool:
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                if not fake.fail_next:
                    return False
                status = fake.fail_next.pop(0)
                headers = {"Retry-After": str(fake.retry_after_s)} if (
                    status == 429 and fake.retry_after_s is not None) else None
                self._send(status, {"error": f"fake_{status}",
                                    "error_description": f"injected HTTP {status}"}, headers)
                return True

            def do_POST(self) -> None:
                fake.requests.append(("POST", self.path))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self._fault():
                    return
                expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                if self.path != "/token/oauth/" or \
                        self.headers.get("Authorization") != f"Basic {expected}":
                    self._send(401, {"error": "invalid_client"})
                    return
                token = f"token-{len(fake.tokens) + 1}"
                fake.tokens.append(token)
                self._send(200, {"access_token": token, "token_type": "Bearer",
                                 "expires_in": fake.expires_in_s})

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path))
                if self._fault():
                    return
                url = urlsplit(self.path)
                if url.path != "/open_api/tempo_like_supply_contract/v1/tempo_like_calendars":
                    self._send(404, {"error": "not_found"})
                    return
                auth = self.headers.get("Authorization", "")
                if not fake.tokens or auth != f"Bearer {fake.tokens[-1]}":
                    self._send(401, {"error": "invalid_token"})
                    return
                query = parse_qs(url.query)
                start = datetime.fromisoformat(query["start_date"][0]).date()
                end = datetime.fromisoformat(query["end_date"][0]).date()
                values = []
                for day in sorted(fake.colours, reverse=True):      # newest first
                    if start <= day < end:
                        values.append({
                            "start_date": _midnight(day).isoformat(),
                            "end_date": _midnight(day + timedelta(days=1)).isoformat(),
                            "value": fake.colours[day],
                            "updated_date": (_midnight(day) - timedelta(hours=13)).isoformat()})
                self._send(200, {"tempo_like_calendars": {
                    "start_date": query["start_date"][0], "end_date": query["end_date"][0],
                    "values": values}})

        return Handler


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=PARIS)
