"""RTE's "Tempo Like Supply Contract" API v1 (tempo.md §2), with the standard library's HTTP.

OAuth2 client credentials: the token is asked once and kept until a minute before it expires
(or until a 401 says otherwise). Calendars are asked from yesterday to the day after tomorrow;
the API dates days midnight to midnight and lists them newest first. Errors are `RteError`
with the HTTP status and, for 429, the server's Retry-After.
"""
from __future__ import annotations

import base64
import time
import urllib.parse
import urllib.request
from datetime import date, datetime, timedelta
from typing import Callable

from ..httpjson import HttpJsonError, request_json
from .tempo import COLOURS, PARIS

TOKEN_PATH = "/token/oauth/"
CALENDAR_PATH = "/open_api/tempo_like_supply_contract/v1/tempo_like_calendars"
TOKEN_MARGIN_S = 60.0


RteError = HttpJsonError


class RteClient:
    def __init__(self, base_url: str, client_id: str, client_secret: str, *,
                 timeout_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.base_url = base_url.rstrip("/")
        self._basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self.timeout_s = timeout_s
        self._clock = clock
        self._token: tuple[str, float] | None = None     # (token, expires at, clock seconds)
        self.token_requests = 0

    def calendar(self, first: date, last: date) -> list[tuple[date, str, str | None]]:
        """(day, colour, updated_date) for the days first..last that are published."""
        query = urllib.parse.urlencode({
            "start_date": _midnight(first).isoformat(),
            "end_date": _midnight(last + timedelta(days=1)).isoformat()})
        try:
            body = self._get(f"{CALENDAR_PATH}?{query}")
        except RteError as exc:
            if exc.status != 401:
                raise
            self._token = None          # revoked or expired early: one new token, once
            body = self._get(f"{CALENDAR_PATH}?{query}")
        try:
            values = body["tempo_like_calendars"]["values"]
            days = []
            for value in values:
                colour = value["value"]
                if colour not in COLOURS:
                    raise ValueError(f"unknown colour {colour!r}")
                day = datetime.fromisoformat(value["start_date"]).date()
                days.append((day, colour, value.get("updated_date")))
        except (KeyError, TypeError, ValueError) as exc:
            raise RteError(f"unexpected calendar answer: {exc!r}") from None
        return days

    def _bearer(self) -> str:
        if self._token is not None and self._clock() < self._token[1]:
            return self._token[0]
        self.token_requests += 1
        body = self._request(urllib.request.Request(
            self.base_url + TOKEN_PATH, data=b"grant_type=client_credentials", method="POST",
            headers={"Authorization": f"Basic {self._basic}",
                     "Content-Type": "application/x-www-form-urlencoded"}))
        try:
            token, expires_s = str(body["access_token"]), float(body.get("expires_in", 7200))
        except (KeyError, TypeError, ValueError) as exc:
            raise RteError(f"unexpected token answer: {exc!r}") from None
        self._token = (token, self._clock() + max(expires_s - TOKEN_MARGIN_S, 0.0))
        return token

    def _get(self, path: str) -> dict:
        return self._request(urllib.request.Request(
            self.base_url + path, headers={"Authorization": f"Bearer {self._bearer()}",
                                           "Accept": "application/json"}))

    def _request(self, request: urllib.request.Request) -> dict:
        return request_json(request, self.timeout_s, "RTE")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=PARIS)
