"""EDF Tempo, pure (TWCManager.tariff.tempo): the 06:00 day boundary, the off-peak window, both
daylight-saving changes in Europe/Paris, the season's rules, and what is assumed while
tomorrow's colour is unknown (tempo.md §1, §3)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from TWCManager.tariff.tempo import (BLUE, OFFPEAK, PARIS, PEAK, RED, WHITE, TempoPrices,
                                     colour_or_assumption, easter, next_change, period,
                                     price_at, public_holidays, red_allowed, rule_problems,
                                     tempo_day)

PRICES = TempoPrices()


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


@pytest.mark.parametrize("when, day, which", [
    (paris(2024, 12, 3, 5, 59), date(2024, 12, 2), OFFPEAK),   # still the night of the 2nd
    (paris(2024, 12, 3, 6, 0), date(2024, 12, 3), PEAK),
    (paris(2024, 12, 3, 21, 59), date(2024, 12, 3), PEAK),
    (paris(2024, 12, 3, 22, 0), date(2024, 12, 3), OFFPEAK),
    (paris(2024, 12, 3, 23, 59), date(2024, 12, 3), OFFPEAK),
    (paris(2024, 12, 4, 0, 0), date(2024, 12, 3), OFFPEAK),     # midnight is not a boundary
])
def test_the_day_runs_from_six_to_six(when, day, which):
    assert tempo_day(when) == day and period(when) == which


def test_an_instant_in_utc_is_read_in_paris_time():
    # 05:30 UTC on 3 Dec = 06:30 in Paris (UTC+1): peak of the 3rd, not the night of the 2nd.
    utc = datetime(2024, 12, 3, 5, 30, tzinfo=timezone.utc)
    assert (tempo_day(utc), period(utc)) == (date(2024, 12, 3), PEAK)
    summer = datetime(2025, 7, 1, 4, 30, tzinfo=timezone.utc)      # 06:30 CEST
    assert (tempo_day(summer), period(summer)) == (date(2025, 7, 1), PEAK)
    with pytest.raises(ValueError, match="tz-aware"):
        tempo_day(datetime(2024, 12, 3, 12, 0))


@pytest.mark.parametrize("night", [date(2025, 3, 29), date(2025, 10, 25)])
def test_both_daylight_saving_nights(night):
    """The spring night has 7 off-peak hours, the autumn one 9; every instant of the night is
    billed on the evening's day, and 06:00 local is the boundary on both."""
    start = datetime(night.year, night.month, night.day, 20, 0, tzinfo=PARIS).astimezone(
        timezone.utc)
    offpeak_minutes = 0
    for minute in range(13 * 60):
        when = start + timedelta(minutes=minute)
        if period(when) == OFFPEAK:
            offpeak_minutes += 1
            assert tempo_day(when) == night, when
    assert offpeak_minutes == (7 * 60 if night.month == 3 else 9 * 60)
    morning = next_change(paris(night.year, night.month, night.day, 23, 0))
    assert morning.astimezone(PARIS).hour == 6 and morning.date() == night + timedelta(days=1)


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1),
                    timezones=st.just(timezone.utc)))
def test_the_price_is_the_colour_of_the_tempo_day_and_period(when):
    colours = {tempo_day(when): RED}
    price, assumed, which = price_at(colours, when)
    assert assumed.known and which == period(when)
    assert price == (PRICES.red_peak_eur_kwh if which == PEAK else PRICES.red_offpeak_eur_kwh)
    assert next_change(when) > when


def test_a_shifted_offpeak_window():
    prices = TempoPrices(offpeak_start_min=23 * 60, offpeak_end_min=7 * 60)
    assert period(paris(2024, 12, 3, 22, 30), prices) == PEAK
    assert period(paris(2024, 12, 4, 6, 30), prices) == OFFPEAK
    daytime = TempoPrices(offpeak_start_min=12 * 60, offpeak_end_min=14 * 60)   # no wrap
    assert period(paris(2024, 12, 3, 13, 0), daytime) == OFFPEAK
    assert period(paris(2024, 12, 3, 23, 0), daytime) == PEAK


def test_holidays_and_the_red_rule():
    assert easter(2024) == date(2024, 3, 31) and easter(2025) == date(2025, 4, 20)
    assert date(2024, 4, 1) in public_holidays(2024)            # Easter Monday
    assert date(2025, 12, 25) in public_holidays(2025)
    assert red_allowed(date(2024, 12, 3))                        # a Tuesday in December
    assert not red_allowed(date(2024, 12, 7))                    # Saturday
    assert not red_allowed(date(2024, 12, 25))                   # Christmas, a Wednesday
    assert not red_allowed(date(2025, 4, 1))                     # April


def test_rule_problems_find_each_broken_rule():
    assert rule_problems({date(2024, 12, 3): RED, date(2024, 12, 8): BLUE}) == []
    assert "red outside" in rule_problems({date(2025, 6, 3): RED})[0]
    assert "white on a Sunday" in rule_problems({date(2024, 12, 8): WHITE})[0]
    week = {date(2025, 1, 6) + timedelta(days=n): RED for n in range(5)}   # Mon..Fri
    assert rule_problems(week) == []
    week[date(2025, 1, 13)] = RED          # the next Monday: six in a row across the weekend
    assert rule_problems(week) == ["2025-01-13: more than 5 red days in a row"]
    week[date(2025, 1, 10)] = BLUE         # Friday blue breaks the run
    assert rule_problems(week) == []
    too_many = {}
    day = date(2024, 11, 4)
    while len(too_many) < 23:
        if red_allowed(day) and day.weekday() < 4:
            too_many[day] = RED
        day += timedelta(days=1)
    assert any("23 red days, at most 22" in p for p in rule_problems(too_many))


@pytest.mark.parametrize("day, colours, expected, note", [
    (date(2024, 12, 3), {}, RED, "assuming red"),
    (date(2024, 12, 8), {}, BLUE, "Sundays are always blue"),
    (date(2024, 12, 7), {}, WHITE, "cannot be red"),            # Saturday
    (date(2025, 6, 3), {}, WHITE, "cannot be red"),             # June
    (date(2024, 12, 3), {date(2024, 12, 3): BLUE}, BLUE, "published"),
])
def test_unknown_days_follow_the_careful_rule(day, colours, expected, note):
    assumed = colour_or_assumption(colours, day)
    assert assumed.colour == expected and note in assumed.reason
    assert assumed.known == (day in colours)


def test_once_22_reds_are_used_no_more_red_is_assumed():
    reds, day = {}, date(2024, 11, 4)
    while len(reds) < 22:
        if red_allowed(day):
            reds[day] = RED
        day += timedelta(days=1)
    later = date(2025, 3, 25)
    assert red_allowed(later)
    assert colour_or_assumption(reds, later).colour == WHITE
    del reds[max(reds)]
    assert colour_or_assumption(reds, later).colour == RED
