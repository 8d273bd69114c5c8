"""EDF Tempo, pure (tempo.md): which Tempo day a moment belongs to, peak or off-peak, the price,
the season's rules, and what to assume when tomorrow's colour is not yet published.

Everything takes a tz-aware `datetime` and works in Europe/Paris local time, so both
daylight-saving changes are the zoneinfo database's business, not ours. A Tempo day runs from
the day boundary (06:00) to the next one: 00:00–06:00 on date D is billed at D−1's off-peak
price. The off-peak window (22:00–06:00 by default) and the boundary are configuration.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..config import TariffConfig

PARIS = ZoneInfo("Europe/Paris")

BLUE, WHITE, RED = "BLUE", "WHITE", "RED"
COLOURS = (BLUE, WHITE, RED)
PEAK, OFFPEAK = "peak", "offpeak"

REDS_PER_SEASON = 22
WHITES_PER_SEASON = 43
MAX_REDS_IN_A_ROW = 5
RED_MONTHS = (11, 12, 1, 2, 3)


@dataclass(frozen=True)
class TempoPrices:
    """The six prices, the feed-in price (EUR/kWh) and the hours, from `[tariff]`."""
    # The defaults are the configuration's (one place: config.py's [tariff]).
    blue_peak_eur_kwh: float = TariffConfig.blue_peak_eur_kwh
    blue_offpeak_eur_kwh: float = TariffConfig.blue_offpeak_eur_kwh
    white_peak_eur_kwh: float = TariffConfig.white_peak_eur_kwh
    white_offpeak_eur_kwh: float = TariffConfig.white_offpeak_eur_kwh
    red_peak_eur_kwh: float = TariffConfig.red_peak_eur_kwh
    red_offpeak_eur_kwh: float = TariffConfig.red_offpeak_eur_kwh
    export_eur_kwh: float = TariffConfig.export_eur_kwh
    offpeak_start_min: int = 22 * 60
    offpeak_end_min: int = 6 * 60
    day_start_min: int = 6 * 60          # the Tempo day boundary

    def price(self, colour: str, period: str) -> float:
        return getattr(self, f"{colour.lower()}_{period}_eur_kwh")


def local(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("a Tempo time must be tz-aware")
    return when.astimezone(PARIS)


def _minute_of_day(when: datetime) -> int:
    return when.hour * 60 + when.minute


def tempo_day(when: datetime, prices: TempoPrices = TempoPrices()) -> date:
    """The Tempo day `when` is billed on: before the boundary, it is still yesterday's."""
    paris = local(when)
    if _minute_of_day(paris) < prices.day_start_min:
        return paris.date() - timedelta(days=1)
    return paris.date()


def period(when: datetime, prices: TempoPrices = TempoPrices()) -> str:
    minute = _minute_of_day(local(when))
    start, end = prices.offpeak_start_min, prices.offpeak_end_min
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    return OFFPEAK if inside else PEAK


def day_start(day: date, prices: TempoPrices = TempoPrices()) -> datetime:
    """When Tempo day `day` begins (06:00 Paris time; aware)."""
    minutes = prices.day_start_min
    return datetime.combine(day, time(minutes // 60, minutes % 60), PARIS)


def next_change(when: datetime, prices: TempoPrices = TempoPrices()) -> datetime:
    """The next moment the period or the Tempo day changes (for plans and countdowns)."""
    paris = local(when)
    candidates = []
    for minutes in {prices.offpeak_start_min, prices.offpeak_end_min, prices.day_start_min}:
        for offset in (0, 1):
            at = datetime.combine(paris.date() + timedelta(days=offset),
                                  time(minutes // 60, minutes % 60), PARIS)
            if at > paris:
                candidates.append(at)
    return min(candidates)


# ------------------------------------------------------------------ the season's rules

def season_start(day: date) -> date:
    """1 September of the season `day` belongs to."""
    return date(day.year if day.month >= 9 else day.year - 1, 9, 1)


def easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous algorithm, 'Meeus/Jones/Butcher')."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 19 * l) // 433
    month = (h + l - 7 * m + 90) // 25
    return date(year, month, (h + l - 7 * m + 33 * month + 19) % 32)


def public_holidays(year: int) -> set[date]:
    """France's public holidays (metropolitan)."""
    sunday = easter(year)
    fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]
    return {date(year, m, d) for m, d in fixed} | {
        sunday + timedelta(days=1), sunday + timedelta(days=39), sunday + timedelta(days=50)}


def red_allowed(day: date) -> bool:
    """Red only November–March, Monday–Friday, not on a public holiday."""
    return (day.month in RED_MONTHS and day.weekday() < 5
            and day not in public_holidays(day.year))


def white_allowed(day: date) -> bool:
    return day.weekday() != 6


def rule_problems(colours: dict[date, str]) -> list[str]:
    """What breaks tempo.md §1 in a calendar (for fixtures and generated seasons)."""
    problems = []
    for day, colour in sorted(colours.items()):
        if colour not in COLOURS:
            problems.append(f"{day}: {colour!r} is not a Tempo colour")
        elif colour == RED and not red_allowed(day):
            problems.append(f"{day}: red outside Nov–Mar weekdays or on a public holiday")
        elif colour == WHITE and not white_allowed(day):
            problems.append(f"{day}: white on a Sunday")
        if colour == RED and _reds_in_a_row(colours, day) > MAX_REDS_IN_A_ROW:
            problems.append(f"{day}: more than {MAX_REDS_IN_A_ROW} red days in a row")
    seasons: dict[date, list[str]] = {}
    for day, colour in colours.items():
        seasons.setdefault(season_start(day), []).append(colour)
    for start, season in sorted(seasons.items()):
        for colour, most in ((RED, REDS_PER_SEASON), (WHITE, WHITES_PER_SEASON)):
            if season.count(colour) > most:
                problems.append(f"season from {start}: {season.count(colour)} {colour.lower()} "
                                f"days, at most {most}")
    return problems


def _reds_in_a_row(colours: dict[date, str], day: date) -> int:
    """Red days ending at `day`, counted across the days that cannot be red (a weekend
    between two red weeks does not break the run)."""
    count, back = 1, day - timedelta(days=1)
    for _ in range(31):
        if colours.get(back) == RED:
            count += 1
        elif red_allowed(back):
            break
        back -= timedelta(days=1)
    return count


def reds_used(colours: dict[date, str], day: date) -> int:
    """Red days of `day`'s season before it."""
    start = season_start(day)
    return sum(1 for d, c in colours.items() if c == RED and start <= d < day)


@dataclass(frozen=True)
class Assumed:
    colour: str
    known: bool
    reason: str


def colour_or_assumption(colours: dict[date, str], day: date) -> Assumed:
    """The day's colour if known; else the careful assumption of tempo.md §3: never red when
    the rules forbid it (then white, the dearer of the two, except Sunday: always blue), else
    red, because insuring against a red peak (0.73 €/kWh) is cheap."""
    if day in colours:
        return Assumed(colours[day], True, "published")
    if day.weekday() == 6:
        return Assumed(BLUE, False, "unknown, but Sundays are always blue")
    if not red_allowed(day):
        return Assumed(WHITE, False, "unknown; cannot be red (season rules): assuming white")
    if reds_used(colours, day) >= REDS_PER_SEASON:
        return Assumed(WHITE, False, "unknown; the season's 22 red days are used: assuming white")
    return Assumed(RED, False, "unknown — assuming red")


def price_at(colours: dict[date, str], when: datetime,
             prices: TempoPrices = TempoPrices()) -> tuple[float, Assumed, str]:
    """The import price at `when`, the colour behind it (known or assumed) and the period."""
    assumed = colour_or_assumption(colours, tempo_day(when, prices))
    which = period(when, prices)
    return prices.price(assumed.colour, which), assumed, which
