"""What the master knows about one slave TWC (pure state, no I/O).

Timestamps are monotonic seconds passed in by the caller. Unlike the original,
whose hold timers were class attributes set once at program start
(original-program.md §10 item 9), every timer here starts when the slave is
registered.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Slave heartbeat states (twc-protocol.md §3.2), named once in messages.py.
from .messages import STATE_CHARGING, STATE_READY, STATE_STARTING  # noqa: F401
from .messages import STATE_DO_NOT_CHARGE as STATE_PLUGGED_NO_CHARGE
from .messages import STATE_READY_TO_CHARGE as STATE_PLUGGED_READY

# States in which a car is plugged in but draws nothing: it may want power (03 is
# also what a unit shows after we told it 0 A, or with a full car; the idle rule
# sorts those out).
WAITING_STATES = frozenset({STATE_PLUGGED_NO_CHARGE, STATE_PLUGGED_READY, STATE_STARTING})
# States that show a car asking to charge right now: entering one is a plug-in.
ASKING_STATES = frozenset({STATE_PLUGGED_READY, STATE_STARTING})

# The actual current must move by more than this to count as a change (§6.2).
SIGNIFICANT_CHANGE_AMPS = 0.8
# Below this a slave is "not drawing" (original's numCarsCharging test).
CHARGING_THRESHOLD_AMPS = 1.0


def min_amps_for_protocol(protocol: int) -> int:
    """Lowest non-zero offer a unit accepts: offers under 5 A (p1) / 6 A (p2)
    put cars in state 03 until re-plugged (§6.6)."""
    return 5 if protocol == 1 else 6


def spike_amps_for_rating(rated_amps: float) -> int:
    """Offer that cancels the Tesla 6 A lock: 21 A on 80 A units, 16 A below (§6.5).
    Per slave here; the original kept one global set by the last linkready."""
    return 21 if rated_amps >= 80 else 16


@dataclass
class SlaveTWC:
    twcid: int
    sign: int
    protocol: int
    rated_amps: float
    registered_at: float
    last_heard_at: float = 0.0

    # Last slave heartbeat.
    state: int = STATE_READY
    reported_limit_amps: float = 0.0
    actual_amps: float = 0.0
    heartbeats: int = 0
    last_slave_data: bytes = b""

    # Policy bookkeeping. offered_amps is the limit in force on the unit: the one
    # we last commanded, or what it reported before we commanded anything.
    offered_amps: int = 0
    commanded: bool = False
    offer_ever_changed: bool = False
    offer_changed_at: float = 0.0
    # When the offer last went from 0 A to a charging limit (green tracking's stop hold).
    offer_started_at: float = 0.0
    actual_monitor_amps: float = -1.0
    actual_changed_at: float = 0.0
    # When the draw last rose by a significant step: the car is still ramping up.
    actual_rose_at: float = 0.0
    # Since when power has been offered while the unit drew nothing; None when drawing.
    low_draw_since: float | None = None
    # Set when an offer went unused for the give-up time; cleared by a plug-in.
    idle: bool = False

    last_master_data: bytes = b""
    # Safety problems found for this unit (decisions.md §4.8), shown in status.
    config_errors: list[str] = field(default_factory=list)

    # From FD EB reports.
    kwh: int | None = None
    volts: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        self.last_heard_at = self.last_heard_at or self.registered_at
        self.offer_changed_at = self.registered_at
        self.offer_started_at = self.registered_at
        self.actual_changed_at = self.registered_at
        self.actual_rose_at = self.registered_at

    @property
    def min_amps_supported(self) -> int:
        return min_amps_for_protocol(self.protocol)

    @property
    def spike_amps(self) -> int:
        return spike_amps_for_rating(self.rated_amps)

    @property
    def is_charging(self) -> bool:
        return self.actual_amps >= CHARGING_THRESHOLD_AMPS

    @property
    def id_hex(self) -> str:
        return f"{self.twcid:04X}"

    @property
    def in_force_amps(self) -> float:
        """The most this unit may let its car draw now: what we last offered, or the limit it
        last reported if that is higher. A lowered limit is in force only once the unit says
        so: a heartbeat lost on the bus (an adapter unplugged) leaves the old one in place."""
        return max(self.offered_amps, self.reported_limit_amps, 0)

    def update_from_heartbeat(self, state: int, limit_amps: float, actual_amps: float,
                              now: float) -> bool:
        """Book a slave heartbeat (§6.2). Returns True when the state changed."""
        previous_state = self.state
        first = self.heartbeats == 0
        self.state = state
        self.reported_limit_amps = limit_amps
        self.actual_amps = actual_amps
        self.last_heard_at = now
        self.heartbeats += 1
        if not self.commanded:
            # Until we command a limit, the unit's own limit is what is in force,
            # so it counts toward the wiring total.
            self.offered_amps = int(limit_amps)
        if (self.actual_monitor_amps < 0
                # rounded to the wire's hundredths, so 10.00 -> 10.80 is exactly 0.80
                or round(abs(actual_amps - self.actual_monitor_amps), 2) > SIGNIFICANT_CHANGE_AMPS):
            if actual_amps > self.actual_monitor_amps:
                self.actual_rose_at = now
            self.actual_monitor_amps = actual_amps
            self.actual_changed_at = now
        if self.idle and not first and self._is_plug_in(previous_state, state):
            self.idle = False
        self._track_draw(now)
        return first or previous_state != state

    @staticmethod
    def _is_plug_in(previous_state: int, state: int) -> bool:
        # A car arriving shows as leaving the ready state, or asking for power.
        return ((previous_state == STATE_READY and state != STATE_READY)
                or (state in ASKING_STATES and previous_state not in ASKING_STATES))

    def _track_draw(self, now: float) -> None:
        if self.offered_amps > 0 and not self.is_charging:
            if self.low_draw_since is None:
                self.low_draw_since = now
        else:
            self.low_draw_since = None

    def update_idle(self, now: float, give_up_s: float) -> None:
        """An offer unused for give_up_s means no car wants power: stop holding it
        (the original kept offering the minimum forever, §10 item 13)."""
        if self.low_draw_since is not None and now - self.low_draw_since >= give_up_s:
            self.idle = True

    def record_offer(self, amps: int, now: float) -> bool:
        """Remember the limit just commanded. Returns True when it changed."""
        self.commanded = True
        if amps == self.offered_amps:
            self._track_draw(now)
            return False
        if self.offered_amps <= 0 < amps:
            self.offer_started_at = now
        self.offered_amps = amps
        self.offer_changed_at = now
        self.offer_ever_changed = True
        self._track_draw(now)
        return True
