"""The RS-485 master engine (twc-protocol.md §4, §5.1; decisions.md §3–§4).

No I/O and no clock reads: the daemon feeds bytes and ticks with `now`
(monotonic seconds) and writes the frames returned. What to offer is not decided
here: the engine asks its `Planner` (the site core) for a decision on the policy's
own clock and before each heartbeat, and for each unit's offer at its heartbeat.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Protocol

from . import consolelog, messages

from ..core import policy
from .messages import (KwhReport, MasterHeartbeat, MasterLinkready1, MasterLinkready2,
                       SlaveHeartbeat, SlaveLinkready)
from .protocol import FrameDecoder, encode_frame
from .slave import SlaveTWC, min_amps_for_protocol

log = logging.getLogger("TWCManager.master")

# Messages getLastTWCMsgResponse skips: routine traffic, not a debug reply (§8.6).
# Below DEBUG: every decoded frame (the SHB lines at DEBUG already show heartbeats).
TRACE = 5

ROUTINE_TYPES = frozenset({0xFBE0, 0xFDE0, 0xFCE1, 0xFBE2, 0xFDE2, 0xFBEB, 0xFDEB})

# A unit rated under the lowest current any unit can be offered (5 A, protocol 1) could
# never charge; real Gen2 units are rated 12-80 A, so such a linkready (an all-zero
# FD E2 among them) is line noise or a broken device, not a unit to book amps for.
MIN_RATED_AMPS = min_amps_for_protocol(1)


@dataclass(frozen=True)
class MasterTiming:
    heartbeat_interval_s: float = 1.0   # one heartbeat per second, round-robin
    linkready_interval_s: float = 0.1
    linkready_count: int = 5            # ×5 linkready1 then ×5 linkready2
    slave_timeout_s: float = 26.0
    max_slaves: int = 3
    # With the table full, a newcomer only takes the place of a unit not heard from this
    # long (the most silent one): with 3 units and one heartbeat a second a live unit
    # answers at least every 3 s, so a flood of linkreadies never pushes out a unit
    # that is charging. Units silent for slave_timeout_s are dropped anyway.
    evict_silent_after_s: float = 10.0
    # Linkreadies refused (table full, or no real unit) are reported once per this
    # period per reason, with a count: never a line per frame.
    refusal_log_interval_s: float = 60.0
    pool_interval_s: float = 1.0        # the policy's own clock (decisions.md §4.7)
    echo_window_s: float = 0.5          # adapters that echo our own frames
    # After a command changed the settings, the next heartbeat goes out this soon after
    # the last frame (time for the slave's reply), not a whole second later.
    expedite_gap_s: float = 0.25
    # A unit that went silent may still have its last limit in force (only its replies
    # may be lost): its amps stay booked against the wiring this long, or until it
    # announces itself again.
    silent_reservation_s: float = 300.0
    # Lifetime kWh and phase volts (FB EB → FD EB) from protocol-2 units: the volts turn
    # amps into watts for green tracking (decisions.md §4.15).
    kwh_interval_s: float = 60.0
    kwh_first_after_s: float = 5.0
    kwh_quiet_s: float = 0.4


@dataclass
class BusProblems:
    other_master_id: int | None = None
    other_master_seen_at: float | None = None
    id_clashes: int = 0
    unknown_messages: int = 0
    refused_linkreadies: int = 0


@dataclass
class _Announce:
    """Start-up linkready burst still to send: (frame, due time) pairs."""
    frames: list[tuple[bytes, float]] = field(default_factory=list)


class Planner(Protocol):
    """What the engine needs from the site core (core.site.Site behind the daemon's adapter)."""

    def plan(self, now: float, units: list[SlaveTWC]) -> None:
        """Decide the pool for the units as they are now."""

    def offer(self, unit: SlaveTWC, others: list[SlaveTWC], now: float,
              reserved_amps: float) -> policy.Offer:
        """The whole amps to offer `unit` at its heartbeat, within the wiring."""


class Master:
    def __init__(self, *, limits: policy.Limits, planner: Planner,
                 master_id: int = 0x7777, master_sign: int = 0x77,
                 timing: MasterTiming = MasterTiming(),
                 rng: random.Random | None = None) -> None:
        self.limits = limits
        self.planner = planner
        self.timing = timing
        self.master_id = master_id
        self.master_sign = master_sign
        self._rng = rng or random.Random()

        self.decoder = FrameDecoder()
        self.slaves: list[SlaveTWC] = []          # round-robin order
        self._turn = 0
        self._last_tx_at = float("-inf")
        self._announce = _Announce()
        self._pool_at = float("-inf")
        self.problems = BusProblems()
        self._recent_tx: list[tuple[bytes, float]] = []
        self._expedite = False
        self._reserved: dict[int, tuple[float, float]] = {}  # twcid -> (amps, dropped at)
        self._last_heartbeat_at = float("-inf")
        self._kwh_due_at: dict[int, float] = {}
        self._refusal_logged_at: dict[str, float] = {}  # reason -> when last warned

        # Debug commands (sendTWCMsg, setMasterHeartbeatData).
        self.override_heartbeat_data: bytes | None = None
        self.last_twc_response: bytes | None = None
        self._awaiting_response = False

    # ----------------------------------------------------------------- start-up

    def start(self, now: float) -> None:
        """Queue linkready1 ×5 then linkready2 ×5 (§4 start-up)."""
        lr1 = messages.to_wire(MasterLinkready1(self.master_id, self.master_sign))
        lr2 = messages.to_wire(MasterLinkready2(self.master_id, self.master_sign))
        count, step = self.timing.linkready_count, self.timing.linkready_interval_s
        burst = [lr1] * count + [lr2] * count
        self._announce.frames = [(frame, now + i * step) for i, frame in enumerate(burst)]

    @property
    def announcing(self) -> bool:
        return bool(self._announce.frames)

    # ------------------------------------------------------------------ timing

    def next_deadline(self) -> float:
        deadlines = [self._pool_at + self.timing.pool_interval_s]
        if self._announce.frames:
            deadlines.append(self._announce.frames[0][1])
        elif self.slaves:
            deadlines.append(self._heartbeat_due())
            poll = self._kwh_poll_due()
            if poll:
                deadlines.append(poll[0])
        return min(deadlines)

    def _heartbeat_due(self) -> float:
        if self._expedite:
            return self._last_tx_at + self.timing.expedite_gap_s
        # One a second; other frames in between (kWh polls, debug) do not shift the cadence
        # but the bus must be quiet for a moment after them.
        return max(self._last_heartbeat_at + self.timing.heartbeat_interval_s,
                   self._last_tx_at + self.timing.expedite_gap_s)

    def _kwh_poll_due(self) -> tuple[float, SlaveTWC] | None:
        """The next FB EB request (kWh and phase volts), in the middle of a heartbeat gap
        so it never meets a slave's heartbeat reply."""
        due = [(self._kwh_due_at.get(s.twcid, float("inf")), s) for s in self.slaves
               if s.protocol == 2]
        if not due:
            return None
        at, slave = min(due, key=lambda pair: pair[0])
        at = max(at, self._last_tx_at + self.timing.kwh_quiet_s)
        if at > self._heartbeat_due() - self.timing.kwh_quiet_s:
            return None  # not in this gap: after the next heartbeat
        return at, slave

    def on_tick(self, now: float) -> list[bytes]:
        """Everything that is due at `now`: the policy clock, linkreadies, a heartbeat."""
        out: list[bytes] = []
        if now >= self._pool_at + self.timing.pool_interval_s:
            self._refresh_pool(now)
        if self._announce.frames:
            # One linkready per call keeps them spaced even after a stall;
            # no heartbeats while announcing, as the original.
            if self._announce.frames[0][1] <= now:
                out.append(self._sent(self._announce.frames.pop(0)[0], now))
            return out
        if self.slaves and now >= self._heartbeat_due():
            frame = self._next_heartbeat(now)
            self._expedite = False
            if frame:
                out.append(frame)
            return out
        poll = self._kwh_poll_due()
        if poll and now >= poll[0]:
            slave = poll[1]
            self._kwh_due_at[slave.twcid] = now + self.timing.kwh_interval_s
            out.append(self._sent(messages.to_wire(
                messages.KwhRequest(self.master_id, slave.twcid)), now))
        return out

    def _sent(self, frame: bytes, now: float) -> bytes:
        self._last_tx_at = now
        self._recent_tx = [(f, t) for f, t in self._recent_tx
                           if now - t < self.timing.echo_window_s][-8:] + [(frame, now)]
        return frame

    # -------------------------------------------------------------------- pool

    def _refresh_pool(self, now: float) -> None:
        self._pool_at = now
        self.planner.plan(now, self.slaves)

    def settings_changed(self, now: float) -> None:
        """Call after a command changed the settings: the pool is recomputed at once
        so the very next heartbeat carries the new offer, and idle slaves are probed
        again (the user asked for power)."""
        for slave in self.slaves:
            slave.idle = False
            slave.low_draw_since = None
        self._refresh_pool(now)
        self._expedite = True

    # -------------------------------------------------------------- heartbeats

    def _next_heartbeat(self, now: float) -> bytes | None:
        while self.slaves:
            self._turn %= len(self.slaves)
            slave = self.slaves[self._turn]
            self._turn += 1
            if now - slave.last_heard_at > self.timing.slave_timeout_s:
                log.warning("We haven't heard from slave %s for over %.0f seconds. "
                            "Stop sending them heartbeat messages.", slave.id_hex,
                            self.timing.slave_timeout_s)
                self._drop(slave)
                continue
            return self._heartbeat(slave, now)
        return None

    def _heartbeat(self, slave: SlaveTWC, now: float) -> bytes:
        self._refresh_pool(now)
        others = [s for s in self.slaves if s is not slave]
        offer = self.planner.offer(slave, others, now, self.reserved_amps(now))
        if self.override_heartbeat_data is not None:
            data, amps = self._safe_override(slave, others, now)
            offer = policy.Offer(amps, "setMasterHeartbeatData override")
        elif slave.reported_limit_amps != offer.amps or offer.amps == 0:
            # 05/09 with 0 A every second, not 00, avoids relay clicking (§3.1).
            data = messages.limit_data(offer.amps, slave.protocol)
        else:
            data = messages.NO_CHANGE(slave.protocol)
        previous = slave.offered_amps
        if slave.record_offer(offer.amps, now) or not slave.last_master_data:
            log.info("Offer to %s: %d A (was %d A): %s", slave.id_hex, offer.amps,
                     previous, offer.reason)
        slave.last_master_data = data
        self._last_heartbeat_at = now
        return self._sent(messages.to_wire(
            MasterHeartbeat(self.master_id, slave.twcid, data)), now)

    def _safe_override(self, slave: SlaveTWC, others: list[SlaveTWC],
                       now: float) -> tuple[bytes, int]:
        """The debug override is sent as given, except that it may not raise a limit
        past the wiring (decisions.md §4.8 holds whatever the commands say)."""
        # Padded or cut to the slave's length (§8.6): 7 bytes for protocol 1, 9 for 2.
        length = messages.HEARTBEAT_DATA_LENGTH[slave.protocol]
        data = messages.pad_to((self.override_heartbeat_data or b"")[:length], length)
        command = data[0]
        asked = int.from_bytes(data[1:3], "big") / 100
        if command in (0x05, 0x08, 0x09):
            wanted = asked
        elif command == 0x06:       # +2 A
            wanted = slave.reported_limit_amps + 2
        elif command == 0x07:       # -2 A
            wanted = max(slave.reported_limit_amps - 2, 0)
        else:                       # 00 no change, 02 error: the limit stays
            return data, slave.offered_amps
        safe = policy.clamp_offer(slave, others, wanted, "override", self.limits,
                                  self.reserved_amps(now))
        if safe.amps == wanted and wanted == int(wanted):
            return data, safe.amps
        log.warning("Heartbeat override %s would offer %.2f A to %s; sending %d A (wiring limit)",
                    data.hex().upper(), wanted, slave.id_hex, safe.amps)
        return messages.limit_data(safe.amps, slave.protocol), safe.amps

    # ---------------------------------------------------------------- receive

    def on_bytes(self, data: bytes, now: float) -> list[bytes]:
        out: list[bytes] = []
        for raw in self.decoder.feed(data):
            try:
                msg = messages.parse_message(raw)
                out.extend(self._dispatch(msg, raw, now))
            except Exception:  # one bad message must never stop the loop
                log.exception("Error handling message %s", raw.hex(" ").upper())
        return out

    def _dispatch(self, msg: messages.Message, raw: bytes, now: float) -> list[bytes]:
        if self._is_echo(raw, now):
            return []
        if log.isEnabledFor(TRACE):
            log.log(TRACE, "Rx %s", consolelog.describe(msg))
        if isinstance(msg, SlaveLinkready):
            return self._on_slave_linkready(msg, now)
        if isinstance(msg, SlaveHeartbeat):
            self._on_slave_heartbeat(msg, now)
            return []
        if isinstance(msg, KwhReport):
            slave = self._find(msg.sender_id)
            if slave:
                slave.kwh, slave.volts = msg.kwh, msg.volts
                slave.last_heard_at = now
            return []
        if isinstance(msg, (MasterLinkready1, MasterLinkready2, MasterHeartbeat)):
            return self._on_other_master(msg.sender_id, now)
        self._remember_response(raw)
        if type(msg).__name__ == "Unknown":
            self.problems.unknown_messages += 1
            log.warning("Unknown message from slave: %s", raw.hex(" ").upper())
        return []

    def _is_echo(self, raw: bytes, now: float) -> bool:
        # Some RS-485 adapters hear their own transmissions; those are not another master.
        frame = encode_frame(raw[:-1])
        return any(f == frame and now - t < self.timing.echo_window_s
                   for f, t in self._recent_tx)

    def _remember_response(self, raw: bytes) -> None:
        type_code = int.from_bytes(raw[:2], "big")
        if self._awaiting_response and type_code not in ROUTINE_TYPES:
            self.last_twc_response = raw
            self._awaiting_response = False

    def _find(self, twcid: int) -> SlaveTWC | None:
        return next((s for s in self.slaves if s.twcid == twcid), None)

    def _on_slave_linkready(self, msg: SlaveLinkready, now: float) -> list[bytes]:
        if msg.sender_id == 0 or msg.max_amps < MIN_RATED_AMPS:
            self._refuse("not a unit", now, "Ignoring a slave linkready from %04X rated "
                         "%.2f A: no real TWC has ID 0000 or a rating under %d A",
                         msg.sender_id, msg.max_amps, MIN_RATED_AMPS)
            return []
        if msg.sender_id == self.master_id:
            return self._id_clash(f"slave {msg.sender_id:04X} uses our ID", now)
        slave = self._find(msg.sender_id)
        if slave is None:
            slave = self._register(msg, now)
            if slave is None:
                return []  # not answered: it must not believe it has a master
        else:
            slave.last_heard_at = now
            if msg.protocol and msg.protocol != slave.protocol:
                slave.protocol = msg.protocol
        # Answer a linkready at once with a no-change heartbeat (§4).
        data = messages.NO_CHANGE(slave.protocol)
        slave.last_master_data = data
        self._last_heartbeat_at = now
        return [self._sent(messages.to_wire(
            MasterHeartbeat(self.master_id, slave.twcid, data)), now)]

    def _register(self, msg: SlaveLinkready, now: float) -> SlaveTWC | None:
        """A new slave, in place of one that went silent when the table is full;
        None when every registered unit is still answering."""
        if len(self.slaves) >= self.timing.max_slaves:
            gone = min(self.slaves, key=lambda s: s.last_heard_at)
            silent_s = now - gone.last_heard_at
            if silent_s <= self.timing.evict_silent_after_s:
                self._refuse("table full", now, "More than %d slaves on the bus: ignoring "
                             "the linkready of %04X, every registered unit is answering",
                             self.timing.max_slaves, msg.sender_id)
                return None
            log.warning("More than %d slaves on the bus: %04X replaces %s, not heard from "
                        "for %.0f s", self.timing.max_slaves, msg.sender_id, gone.id_hex,
                        silent_s)
            self._drop(gone)
        # Back on the bus: what it reports from now on replaces the booking.
        self._reserved.pop(msg.sender_id, None)
        # A 20-byte linkready gives no protocol; assume 2, whose 6 A floor is the safer.
        slave = SlaveTWC(twcid=msg.sender_id, sign=msg.sign, protocol=msg.protocol or 2,
                         rated_amps=msg.max_amps, registered_at=now)
        self._check_wiring(slave)
        self.slaves.append(slave)
        if self._turn == len(self.slaves) - 1:
            # The rotation was about to wrap to the first unit: keep it so. The newcomer
            # is answered at once, and a second heartbeat right after would only delay
            # the units already charging.
            self._turn += 1
        self._kwh_due_at[slave.twcid] = now + self.timing.kwh_first_after_s
        log.info("New slave %s: protocol %d, rated %.2f A", slave.id_hex, slave.protocol,
                 slave.rated_amps)
        return slave

    def _refuse(self, reason: str, now: float, message: str, *args: object) -> None:
        """Count a refused linkready; warn at most once per refusal_log_interval_s per
        reason, however many frames arrive."""
        self.problems.refused_linkreadies += 1
        logged_at = self._refusal_logged_at.get(reason)
        if logged_at is not None and now - logged_at < self.timing.refusal_log_interval_s:
            return
        self._refusal_logged_at[reason] = now
        log.warning(message + " (%d linkreadies refused so far; reported at most every "
                    "%.0f s)", *args, self.problems.refused_linkreadies,
                    self.timing.refusal_log_interval_s)

    def _check_wiring(self, slave: SlaveTWC) -> None:
        """A wiring limit above the unit's rating is a configuration error; the unit
        is capped at its rating (decisions.md §4.8; the original capped at max/4)."""
        if self.limits.wiring_max_amps_per_twc > slave.rated_amps:
            problem = (f"wiring_max_amps_per_twc ({self.limits.wiring_max_amps_per_twc:g} A) "
                       f"is above the rating of TWC {slave.id_hex} ({slave.rated_amps:g} A): "
                       f"capping it at {slave.rated_amps:g} A; check the configuration")
            slave.config_errors.append(problem)
            log.error("%s", problem)

    def reserved_amps(self, now: float) -> float:
        """Amps booked for units that went silent (see MasterTiming.silent_reservation_s)."""
        self._reserved = {twcid: (amps, at) for twcid, (amps, at) in self._reserved.items()
                          if now - at < self.timing.silent_reservation_s}
        return float(sum(amps for amps, _ in self._reserved.values()))

    def _drop(self, slave: SlaveTWC) -> None:
        if slave.in_force_amps > 0:
            self._reserved[slave.twcid] = (slave.in_force_amps, slave.last_heard_at)
        index = self.slaves.index(slave)
        self.slaves.remove(slave)
        if index < self._turn:
            self._turn -= 1

    def _on_slave_heartbeat(self, msg: SlaveHeartbeat, now: float) -> None:
        slave = self._find(msg.sender_id)
        if slave is None:
            log.error("Heartbeat from unknown slave %04X; waiting for its linkready",
                      msg.sender_id)
            return
        if msg.receiver_id != self.master_id:
            log.warning("Slave %s sent a heartbeat to %04X, not to us (%04X)", slave.id_hex,
                        msg.receiver_id, self.master_id)
            return
        previous_state = slave.state
        changed = slave.update_from_heartbeat(msg.state, msg.limit_amps, msg.actual_amps, now)
        slave.last_slave_data = msg.data
        log.debug("%s", consolelog.heartbeat_line(slave.twcid, msg.data,
                                                  slave.last_master_data or None))
        if changed:
            log.info("Slave %s: state %02X -> %02X, drawing %.2f of %.2f A", slave.id_hex,
                     previous_state, msg.state, msg.actual_amps, msg.limit_amps)

    def _on_other_master(self, sender_id: int, now: float) -> list[bytes]:
        if sender_id == self.master_id:
            return self._id_clash(f"another master uses our ID {sender_id:04X}", now)
        first = self.problems.other_master_id != sender_id
        self.problems.other_master_id = sender_id
        self.problems.other_master_seen_at = now
        if first:
            log.error("Another master (ID %04X) is on the RS-485 bus: set its rotary switch "
                      "to F (slave)", sender_id)
        return []

    def _id_clash(self, why: str, now: float) -> list[bytes]:
        """Pick a new ID and sign and announce again (decisions.md §4.6)."""
        self.problems.id_clashes += 1
        taken = {s.twcid for s in self.slaves} | {self.master_id}
        new_id = self.master_id
        while new_id in taken:
            new_id = self._rng.randrange(0x0001, 0xFFFF)
        log.error("ID clash: %s; now using ID %04X", why, new_id)
        self.master_id = new_id
        self.master_sign = self._rng.randrange(0, 0x100)
        self.start(now)
        return []

    # ------------------------------------------------------------------ debug

    def send_debug_message(self, body: bytes, now: float) -> bytes:
        """sendTWCMsg: frame `body` (already checked by the caller) and expect a reply."""
        self.last_twc_response = None
        self._awaiting_response = True
        return self._sent(encode_frame(body), now)

    def debug_message_length(self) -> int:
        """Bodies are padded to 13 bytes for a protocol 1 first slave, else 15 (§8.6)."""
        return 13 if self.slaves and self.slaves[0].protocol == 1 else 15
