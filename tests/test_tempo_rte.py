"""The Tempo calendar's edges against a loopback fake of RTE's API (tests/fake_rte.py): the OAuth2
token kept until it expires, calendars newest first, 401/429/500 and timeouts with backoff, the
poll schedule (from 06:00 every 30 min until tomorrow is known), the cache file across restarts,
trust between sources and the manual override."""
from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta

import pytest

from TWCManager.tariff.calendar import TempoCalendar
from TWCManager.tariff.rte import RteClient, RteError
from TWCManager.tariff.service import TempoService, next_poll
from TWCManager.tariff.tempo import BLUE, PARIS, RED, WHITE, TempoPrices

from .fake_rte import CLIENT_ID, CLIENT_SECRET, FakeRte
from .fakes import FakeClock

TODAY = date(2024, 12, 3)          # a Tuesday in December: red is possible


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def service(rte, clock, tmp_path=None, **kwargs) -> TempoService:
    client = RteClient(rte.url, CLIENT_ID, CLIENT_SECRET, timeout_s=2.0, clock=clock.monotonic)
    calendar = TempoCalendar(tmp_path / "tempo.json" if tmp_path else None)
    return TempoService(calendar, TempoPrices(), clock, client=client, **kwargs)


def test_the_client_keeps_its_token_until_it_expires():
    clock = FakeClock(paris(2024, 12, 3, 10, 0))
    with FakeRte({TODAY: RED, TODAY - timedelta(days=1): BLUE}, expires_in_s=7200) as rte:
        client = RteClient(rte.url, CLIENT_ID, CLIENT_SECRET, clock=clock.monotonic)
        days = client.calendar(TODAY - timedelta(days=1), TODAY + timedelta(days=1))
        assert days[0][:2] == (TODAY, RED) and days[1][:2] == (TODAY - timedelta(days=1), BLUE)
        client.calendar(TODAY, TODAY)
        assert client.token_requests == 1                     # kept
        clock.advance(7200 - 59)                               # within the last minute
        client.calendar(TODAY, TODAY)
        assert client.token_requests == 2
        rte.tokens.append("rotated-by-the-server")             # ours is now refused: 401
        client.calendar(TODAY, TODAY)                          # one new token, then success
        assert client.token_requests == 3
        start = rte.calendar_requests()[0]
        assert "start_date=2024-12-02T00%3A00%3A00%2B01%3A00" in start
        assert "end_date=2024-12-05T00%3A00%3A00%2B01%3A00" in start


@pytest.mark.parametrize("status", [400, 403, 404, 429, 500])
def test_errors_name_the_status(status):
    with FakeRte() as rte:
        client = RteClient(rte.url, CLIENT_ID, CLIENT_SECRET)
        rte.fail_next = [status]
        rte.retry_after_s = 120
        with pytest.raises(RteError) as caught:
            client.calendar(TODAY, TODAY)
        assert caught.value.status == status and f"HTTP {status}" in str(caught.value)
        assert f"fake_{status}" in str(caught.value)
        assert caught.value.retry_after_s == (120 if status == 429 else None)


def test_bad_credentials_and_an_unreachable_or_slow_server():
    with FakeRte() as rte:
        with pytest.raises(RteError, match="HTTP 401"):
            RteClient(rte.url, CLIENT_ID, "wrong").calendar(TODAY, TODAY)
        rte.delay_s = 1.0
        with pytest.raises(RteError, match="unreachable.*timed out"):
            RteClient(rte.url, CLIENT_ID, CLIENT_SECRET, timeout_s=0.2).calendar(TODAY, TODAY)
        url = rte.url
    with pytest.raises(RteError, match="unreachable"):
        RteClient(url, CLIENT_ID, CLIENT_SECRET, timeout_s=1).calendar(TODAY, TODAY)


def test_next_poll_schedule():
    prices = TempoPrices()
    known = {TODAY: RED, TODAY + timedelta(days=1): BLUE}
    morning = paris(2024, 12, 3, 6, 5)
    # Tomorrow unknown from 06:00: every 30 min.
    assert next_poll(morning, {TODAY: RED}, 0, None, 1800, prices) == morning + timedelta(minutes=30)
    # Both known: the next boundary, tomorrow 06:00 (Paris), not midnight.
    assert next_poll(morning, known, 0, None, 1800, prices) == paris(2024, 12, 4, 6, 0)
    # At 03:00 the Tempo day is still the 2nd: known 2nd and 3rd mean wait for 06:00 today.
    night = paris(2024, 12, 3, 3, 0)
    assert next_poll(night, {TODAY - timedelta(days=1): RED, TODAY: RED}, 0, None, 1800,
                     prices) == paris(2024, 12, 3, 6, 0)
    # Failures back off 60, 120, 240 s … capped; a 429's Retry-After is respected.
    waits = [(next_poll(morning, {}, n, None, 1800, prices) - morning).total_seconds()
             for n in (1, 2, 3, 10)]
    assert waits == [60, 120, 240, 1800]
    assert (next_poll(morning, {}, 1, 900, 1800, prices) - morning).total_seconds() == 900


def test_the_service_learns_backs_off_and_recovers(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="TWCManager.tempo")
    clock = FakeClock(paris(2024, 12, 3, 7, 0))
    with FakeRte({TODAY - timedelta(days=1): WHITE, TODAY: RED}) as rte:
        tempo = service(rte, clock, tmp_path)
        assert tempo.poll_once(clock.now())
        status = tempo.status()
        assert (status["tempo_today"], status["tempo_tomorrow"]) == (RED, None)
        assert status["today"]["source"] == "rte" and status["today"]["learnt_at"]
        assert status["tomorrow"]["assumed"] == RED
        assert status["tomorrow"]["note"] == "unknown — assuming red"
        assert (status["period"], status["price_eur_kwh"]) == ("peak", 0.7295)
        assert tempo.next_poll_at == clock.now() + timedelta(minutes=30)

        rte.fail_next = [500, 500]
        clock.advance(1800)
        assert not tempo.poll_once(clock.now())
        assert "HTTP 500" in tempo.status()["last_error"]
        assert tempo.next_poll_at == clock.now() + timedelta(seconds=60)
        clock.advance(60)
        assert not tempo.poll_once(clock.now())
        assert tempo.next_poll_at == clock.now() + timedelta(seconds=120)
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1                       # the same error is logged once

        rte.colours[TODAY + timedelta(days=1)] = BLUE   # published
        clock.advance(120)
        assert tempo.poll_once(clock.now())
        assert tempo.status()["tempo_tomorrow"] == BLUE and tempo.status()["last_error"] is None
        assert tempo.next_poll_at == paris(2024, 12, 4, 6, 0)
        assert any("RTE answers again" in r.getMessage() for r in caplog.records)


def test_the_cache_survives_a_restart_and_a_bad_cache_is_ignored(tmp_path):
    clock = FakeClock(paris(2024, 12, 3, 7, 0))
    with FakeRte({TODAY: RED, TODAY + timedelta(days=1): WHITE}) as rte:
        service(rte, clock, tmp_path).poll_once(clock.now())
    again = TempoCalendar(tmp_path / "tempo.json")
    assert again.load(TODAY) == 2
    assert again.colours() == {TODAY: RED, TODAY + timedelta(days=1): WHITE}
    assert again.get(TODAY).source == "rte"

    for garbage in (b"{", b"[]", json.dumps({"days": {"2024-12-03": {"colour": "PINK",
                    "source": "rte", "learnt_at": "2024-12-03T07:00:00+01:00"}}}).encode(),
                    b"x" * 300_000):
        (tmp_path / "tempo.json").write_bytes(garbage)
        broken = TempoCalendar(tmp_path / "tempo.json")
        assert broken.load(TODAY) == 0 and broken.colours() == {}
        assert "ignored" in broken.cache_error


def test_trust_and_the_manual_override(tmp_path):
    at = paris(2024, 12, 3, 7, 0)
    calendar = TempoCalendar(tmp_path / "tempo.json")
    assert calendar.learn(TODAY, RED, "rte", at)
    assert not calendar.learn(TODAY, BLUE, "community", at)     # less trusted: refused
    assert calendar.get(TODAY).colour == RED
    assert calendar.learn(TODAY + timedelta(days=1), BLUE, "community", at)
    assert calendar.learn(TODAY + timedelta(days=1), WHITE, "rte", at)   # more trusted: wins
    calendar.override(TODAY, BLUE, at)
    assert calendar.get(TODAY).colour == BLUE and calendar.get(TODAY).source == "manual"
    reloaded = TempoCalendar(tmp_path / "tempo.json")
    reloaded.load(TODAY)
    assert reloaded.get(TODAY).source == "manual"                 # kept across restarts
    reloaded.override(TODAY, None, at)                            # cleared: RTE's colour again
    assert reloaded.get(TODAY).colour == RED and reloaded.get(TODAY).source == "rte"
    with pytest.raises(ValueError, match="expected one of BLUE, WHITE, RED"):
        calendar.override(TODAY, "PINK", at)


def test_an_unwritable_cache_is_reported_not_fatal(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    calendar = TempoCalendar(blocker / "tempo.json")      # a directory that cannot exist
    assert calendar.learn(TODAY, RED, "rte", paris(2024, 12, 3, 7, 0))
    assert calendar.get(TODAY).colour == RED and "cannot write" in calendar.cache_error


def test_the_thread_polls_at_start_and_stops(tmp_path):
    from TWCManager.core.interfaces import SystemClock

    from .util import wait_until

    with FakeRte({date.today(): BLUE}) as rte:
        tempo = service(rte, SystemClock(), tmp_path)
        tempo.start()
        try:
            assert wait_until(lambda: rte.calendar_requests(), timeout_s=10)
            assert wait_until(lambda: tempo.next_poll_at is not None, timeout_s=10)
        finally:
            tempo.stop()
        assert not tempo._thread.is_alive()
