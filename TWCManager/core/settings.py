"""The run-time settings as a domain object: what the user chose (non-scheduled amps, the
schedule, the daily resume of green tracking, charge now) and the keys carried along for the
original (car API tokens, home position), with the rule that private values are never shown.

Storing them is an edge: `TWCManager.settings_file` reads and writes the original's `key=value`
file; nothing here does I/O.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# Sanity bounds for values read from a store. They only reject corruption; the policy still clamps
# every offer to the configured wiring limits. 3 slaves x 80 A is the largest pool that can exist.
AMPS_MAX = 240
MINUTES_PER_DAY = 24 * 60
DAYS_ALL = 0x7F


@dataclass
class Settings:
    non_scheduled_amps: int = -1          # -1 = track green energy, 0 = do not charge
    scheduled_amps: int = -1              # <= 0 = schedule disabled
    scheduled_start_min: int = -1         # minutes since midnight, -1 = unset
    scheduled_end_min: int = -1           # minutes since midnight, -1 = unset
    scheduled_days_bitmap: int = DAYS_ALL  # bit 0 = Sunday ... bit 6 = Saturday
    resume_green_min: int = -1            # minutes since midnight, -1 = never
    kwh_delivered: int = 119
    charge_now_amps: float = 0.0
    charge_now_until_at_wall: float = 0.0  # unix seconds, 0 = no charge-now
    # "N kWh by HH:MM" (issue 12): the energy wanted, the deadline, and what came so far.
    charge_goal_kwh: float = 0.0
    charge_goal_by_at_wall: float = 0.0     # unix seconds, 0 = no goal
    charge_goal_done_kwh: float = 0.0
    # The page's Eco-solar / Eco-cheapest choice; "" = [green] mode of the configuration.
    green_mode: str = ""
    # Every other key=value line (car API tokens, home position, unknown keys), in file order.
    extra: dict[str, str] = field(default_factory=dict)


# Keys whose values must never be shown or logged: the car API's tokens and the home's position
# (an old file carries them). They stay in the file, untouched.
_PRIVATE_KEY_RE = re.compile(
    r"token|secret|passw|pwd|apikey|api_key|credential|cookie|auth|home|lat(itude)?$"
    r"|lon(gitude)?$|location", re.IGNORECASE)
HIDDEN = "[hidden]"


def is_private_key(key: str) -> bool:
    return bool(_PRIVATE_KEY_RE.search(key))


def shown_extra(extra: dict[str, str]) -> dict[str, str]:
    """The extra keys as they may be shown: private values replaced by [hidden]."""
    return {key: HIDDEN if is_private_key(key) and value else value
            for key, value in extra.items()}


def shown_settings(settings: "Settings") -> str:
    """repr() of the settings for status dumps and logs, with private values hidden."""
    fields = {**vars(settings), "extra": shown_extra(settings.extra)}
    return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"
