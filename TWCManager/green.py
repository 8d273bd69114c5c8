"""Where the "track green energy" pool comes from.

The daemon asks a source for the amps available now; `None` means no valid
reading, which the policy turns into 0 A (fail-safe, decisions.md §4.10). The
SolarEdge-backed source that runs `green.command` arrives with its own issue;
until then the daemon uses `NoGreenSource`, and green tracking offers nothing.
"""
from __future__ import annotations

from typing import Protocol


class GreenSource(Protocol):
    def available_amps(self, now: float) -> float | None:
        """Amps the TWCs may draw from the surplus now, or None without a valid reading."""


class NoGreenSource:
    reason = "no energy source is connected yet"

    def available_amps(self, now: float) -> float | None:
        return None
