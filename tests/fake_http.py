"""A loopback JSON server for the outside services' tests (Home Assistant's REST API,
forecast.solar): `routes` maps a path to (status, JSON body); every request is recorded with
its headers.

    with FakeJsonServer({"/api/states/sensor.x": (200, {"state": "12.5"})}) as server:
        ...server.url...
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeJsonServer:
    def __init__(self, routes: dict[str, tuple[int, object]]) -> None:
        self.routes = dict(routes)
        self.requests: list[tuple[str, str, dict]] = []     # (method, path, headers)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeJsonServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path, dict(self.headers)))
                status, body = fake.routes.get(self.path, (404, {"message": "not found"}))
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler
