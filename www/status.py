"""Parsing the daemon's getStatus text (original-program.md §8.7) for the web pages.

Pure functions; the pages never talk to the daemon except through the queue.
"""
from __future__ import annotations

from dataclasses import dataclass, field


class StatusFormatError(ValueError):
    """The daemon's reply does not have the getStatus shape."""


@dataclass(frozen=True)
class Twc:
    twcid: str
    max_amps: str
    actual_amps: str
    offered_amps: str
    state: str


@dataclass(frozen=True)
class Status:
    fields: list[str]
    twcs: list[Twc] = field(default_factory=list)

    @property
    def pool(self) -> str: return self.fields[0]
    @property
    def wiring_max_amps_all_twcs(self) -> str: return self.fields[1]
    @property
    def min_amps_per_twc(self) -> str: return self.fields[2]
    @property
    def charge_now_amps(self) -> str: return self.fields[3]
    @property
    def non_scheduled_amps(self) -> str: return self.fields[4]
    @property
    def scheduled_amps(self) -> str: return self.fields[5]
    @property
    def scheduled_start(self) -> str: return self.fields[6]
    @property
    def scheduled_end(self) -> str: return self.fields[7]
    @property
    def scheduled_days(self) -> str: return self.fields[8]
    @property
    def resume_green_at(self) -> str: return self.fields[9]


def parse_status(text: str) -> Status:
    fields = text.split("`")
    if len(fields) < 12:
        raise StatusFormatError(f"getStatus reply has {len(fields)} fields, expected 12 or more")
    try:
        count = int(fields[11])
    except ValueError:
        raise StatusFormatError(f"getStatus slave count {fields[11]!r} is not a number") from None
    if len(fields) != 12 + count:
        raise StatusFormatError(f"getStatus announces {count} TWCs but carries {len(fields) - 12}")
    twcs = []
    for raw in fields[12:]:
        parts = raw.split("~")
        if len(parts) != 5:
            raise StatusFormatError(f"TWC field {raw!r} does not have 5 parts")
        twcs.append(Twc(*parts))
    return Status(fields, twcs)


def lennybo_json(status: Status) -> dict:
    """TWCapi.php?GetStatus=1 as LennyBo's page returned it: same keys, same order,
    every value a string; `TWC` is an empty list when no TWC is on the bus."""
    return {
        "maxAmpsToDivideAmongSlaves": status.pool,
        "wiringMaxAmpsAllTWCs": status.wiring_max_amps_all_twcs,
        "minAmpsPerTWC": status.min_amps_per_twc,
        "chargeNowAmps": status.charge_now_amps,
        "nonScheduledAmpsMax": status.non_scheduled_amps,
        "scheduledAmpsMax": status.scheduled_amps,
        "scheduledAmpStartTime": status.scheduled_start,
        "scheduledAmpsEndTime": status.scheduled_end,
        "resumeTrackGreenEnergyTime": status.resume_green_at,
        "TWC": [{
            "twcModelMaxAmps": twc.max_amps,
            "twcChargeSpeed": "0" if _float(twc.actual_amps) < 1.0 else twc.actual_amps,
            "twcChargeAvailable": twc.offered_amps,
        } for twc in status.twcs],
    }


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0
