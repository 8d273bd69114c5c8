"""A simulated Tesla Wall Connector Gen2 slave with a car behind it.

Pure: no I/O and no clock reads; every entry point takes `now` (float seconds,
monotonic). The runner (`runner.py`) feeds decoded messages in and writes the
returned messages out. Behaviour follows twc-protocol.md §2, §3, §4 (slave
side) and fixes the original's fake slave (§5.3), which never stopped and never
reported a state other than 01.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..twc.messages import (
    CMD_ACK_STOPPED,
    CMD_ERROR,
    CMD_LIMIT_P1,
    CMD_LIMIT_P2,
    CMD_MINUS_2A,
    CMD_NO_CHANGE,
    CMD_PLUS_2A,
    DEBUG_FIRMWARE_REQUEST,
    DEBUG_MODEL_REQUEST,
    DEBUG_SERIAL_REQUEST,
    DEBUG_SILENCE,
    HEARTBEAT_DATA_LENGTH,
    STATE_CHARGING,
    STATE_DO_NOT_CHARGE,
    STATE_ERROR,
    STATE_MINUS_2A,
    STATE_PLUS_2A,
    STATE_READY,
    STATE_READY_TO_CHARGE,
    STATE_STARTING,
    DebugReply,
    DebugRequest,
    KwhReport,
    KwhRequest,
    MasterHeartbeat,
    MasterLinkready1,
    MasterLinkready2,
    Message,
    SlaveHeartbeat,
    SlaveLinkready,
)

CAR_MODES = ("unplugged", "plugged", "charging", "full")


class Car:
    """The car behind a TWC: how much it draws for a given pilot (offered) limit."""

    def __init__(
        self,
        mode: str = "charging",
        car_max_amps: float = 32.0,
        ramp_amps_per_s: float = 3.0,
        ramp_down_amps_per_s: float = 10.0,
        below_limit_amps: float = 0.5,
        min_draw_amps: float = 5.0,
    ) -> None:
        self._check_mode(mode)
        self.mode = mode
        self.car_max_amps = float(car_max_amps)
        self.ramp_amps_per_s = float(ramp_amps_per_s)
        # Cars obey a lowered pilot within a second or two, faster than they ramp up.
        self.ramp_down_amps_per_s = float(ramp_down_amps_per_s)
        self.below_limit_amps = float(below_limit_amps)
        self.min_draw_amps = float(min_draw_amps)
        self.amps = 0.0
        # Bumped on every plug-in so the TWC can forget a stop ordered for the previous session.
        self.plug_count = 0 if mode == "unplugged" else 1

    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode not in CAR_MODES:
            raise ValueError(f"car mode must be one of {CAR_MODES}, not {mode!r}")

    @property
    def plugged(self) -> bool:
        return self.mode != "unplugged"

    @property
    def wants_charge(self) -> bool:
        return self.mode == "charging"

    def set_mode(self, mode: str) -> None:
        """Plug, unplug, start or finish the car at run time."""
        self._check_mode(mode)
        if self.mode == "unplugged" and mode != "unplugged":
            self.plug_count += 1
        self.mode = mode
        if mode != "charging":
            self.amps = 0.0

    def target_amps(self, pilot_amps: float) -> float:
        """What the car settles at for this pilot limit; 0 below its minimum."""
        if not self.wants_charge or pilot_amps < self.min_draw_amps:
            return 0.0
        return max(0.0, min(pilot_amps, self.car_max_amps) - self.below_limit_amps)

    def advance(self, dt_s: float, pilot_amps: float) -> float:
        """Move the draw towards the target over dt_s; returns the amp-seconds drawn."""
        target = self.target_amps(pilot_amps)
        if dt_s <= 0:
            return 0.0
        if target == 0.0:
            # Contactor opens: the draw stops at once.
            self.amps = 0.0
            return 0.0
        start = self.amps
        rate = self.ramp_amps_per_s if target > start else self.ramp_down_amps_per_s
        if rate <= 0:
            return start * dt_s
        reach_s = abs(target - start) / rate
        if reach_s >= dt_s:
            step = rate * dt_s
            end = start + step if target > start else start - step
            self.amps = end
            return (start + end) / 2 * dt_s
        self.amps = target
        return (start + target) / 2 * reach_s + target * (dt_s - reach_s)


@dataclass(frozen=True)
class _Pending:
    due: float
    message: Message


class SimulatedTWC:
    """One slave TWC on the bus (twc-protocol.md §3, §4 slave side)."""

    LINKREADY_INTERVAL_S = 10.0
    # Without a master heartbeat for this long the unit announces itself again (§4).
    MASTER_SILENCE_S = 10.0
    # Answer to a master linkready2: soon, and at most one per gap (requests inside it are dropped).
    LINKREADY_ANSWER_DELAY_S = 0.1
    LINKREADY_ANSWER_GAP_S = 1.0
    STARTING_STATE_S = 1.0
    DEBUG_SILENCE_S = 5.0
    # Real units report 0.25 A when nothing flows (calibration offset, §3.2).
    IDLE_ACTUAL_AMPS = 0.25

    def __init__(
        self,
        twcid: int,
        sign: int,
        protocol: int = 2,
        max_amps: float = 32.0,
        car: Car | None = None,
        kwh: float = 119.0,
        volts: tuple[int, int, int] = (230, 230, 230),
        reply_delay_s: float = 0.0,
        answer_debug: bool = True,
        firmware: tuple[int, int, int] | None = None,
    ) -> None:
        if protocol not in (1, 2):
            raise ValueError("protocol must be 1 or 2")
        if not 0 <= twcid <= 0xFFFF:
            raise ValueError("twcid must fit in 2 bytes")
        self.twcid = twcid
        self.sign = sign & 0xFF
        self.protocol = protocol
        self.max_amps = float(max_amps)
        self.car = car
        self.kwh = float(kwh)
        self.volts = tuple(int(v) for v in volts)
        self.reply_delay_s = float(reply_delay_s)
        # Debug requests carry no address; on a shared bus only one unit should answer.
        self.answer_debug = answer_debug
        # Protocol 2 arrived with firmware 4.5.3; protocol-1 units ran 1.x.
        self.firmware = firmware or ((4, 5, 3) if protocol == 2 else (1, 5, 8))

        # The limit last set by the master, in hundredths, echoed in bytes 1-2 as is.
        self.limit_centiamps = 0
        self.master_id: int | None = None
        self.stopped_since_plug = False
        self.silenced_by_error = False
        self._silence_after_reply = False

        # What the tests look at.
        self.commands: list[tuple[float, bytes]] = []
        self.heartbeats_received = 0
        self.received: list[tuple[float, Message]] = []
        self.sent: list[tuple[float, Message]] = []

        self._last_advance_at: float | None = None
        self._last_linkready_at: float | None = None
        self._last_master_hb_at: float | None = None
        self._linkready_answer_at: float | None = None
        self._last_answer_at: float | None = None
        self._charge_started_at: float | None = None
        self._plug_count_seen = car.plug_count if car else 0
        self._echo_state: int | None = None
        self._pending: list[_Pending] = []
        self._silent_until = float("-inf")

    # ---- derived values ----------------------------------------------------

    @property
    def limit_amps(self) -> float:
        return self.limit_centiamps / 100

    @property
    def pilot_amps(self) -> float:
        """What the unit lets the car take: the master's limit, capped at the rating."""
        return min(self.limit_amps, self.max_amps)

    @property
    def data_len(self) -> int:
        return HEARTBEAT_DATA_LENGTH[self.protocol]

    @property
    def message_len(self) -> int:
        return 14 if self.protocol == 1 else 16

    @property
    def phases(self) -> int:
        return sum(1 for v in self.volts if v) or 1

    def charging_allowed(self) -> bool:
        car = self.car
        return (
            car is not None
            and car.plugged
            and car.wants_charge
            and self.pilot_amps >= car.min_draw_amps
        )

    def actual_amps(self) -> float:
        if self.car is not None and self.car.amps > 0:
            return self.car.amps
        return self.IDLE_ACTUAL_AMPS

    def state(self, now: float) -> int:
        car = self.car
        if car is None or not car.plugged:
            return STATE_READY
        if not car.wants_charge:
            return STATE_DO_NOT_CHARGE
        if self.charging_allowed():
            started = self._charge_started_at
            if started is not None and now < started + self.STARTING_STATE_S:
                return STATE_STARTING
            return STATE_CHARGING
        return STATE_DO_NOT_CHARGE if self.stopped_since_plug else STATE_READY_TO_CHARGE

    def heartbeat_data(self, now: float) -> bytes:
        state = self._echo_state if self._echo_state is not None else self.state(now)
        actual = min(0xFFFF, int(round(self.actual_amps() * 100)))
        data = bytes([state]) + self.limit_centiamps.to_bytes(2, "big") + actual.to_bytes(2, "big")
        return data + bytes(self.data_len - len(data))

    # ---- entry points -----------------------------------------------------

    def on_message(self, msg: Message, now: float) -> list[Message]:
        """Handle one decoded message from the bus; returns the replies due now."""
        self._advance(now)
        if self._silent(now):
            return []
        replies: list[Message] = []
        if isinstance(msg, MasterLinkready2):
            self.master_id = msg.sender_id
            # One answer per burst: the master sends linkready2 five times, 126 ms apart.
            recent = (
                self._last_answer_at is not None
                and now < self._last_answer_at + self.LINKREADY_ANSWER_GAP_S
            )
            if self._linkready_answer_at is None and not recent:
                self._linkready_answer_at = now + self.LINKREADY_ANSWER_DELAY_S
        elif isinstance(msg, MasterLinkready1):
            self.master_id = msg.sender_id
        elif isinstance(msg, MasterHeartbeat) and msg.receiver_id == self.twcid:
            self.received.append((now, msg))
            self.heartbeats_received += 1
            self._last_master_hb_at = now
            self.master_id = msg.sender_id
            self.commands.append((now, bytes(msg.data)))
            self._apply_command(bytes(msg.data), now)
            replies.append(SlaveHeartbeat(self.twcid, msg.sender_id, self.heartbeat_data(now)))
            self._echo_state = None
            if self._silence_after_reply:
                self._silence_after_reply = False
                self.silenced_by_error = True
        elif isinstance(msg, KwhRequest) and msg.receiver_id == self.twcid:
            self.received.append((now, msg))
            replies.append(KwhReport(self.twcid, int(self.kwh), self.volts, 16))
        elif isinstance(msg, DebugRequest) and msg.type_code == DEBUG_SILENCE:
            # FC A1 silences a unit for about 5 s (§2.1).
            self.received.append((now, msg))
            self._silent_until = now + self.DEBUG_SILENCE_S
        elif isinstance(msg, DebugRequest) and self.answer_debug:
            reply = self._debug_reply(msg, now)
            if reply is not None:
                self.received.append((now, msg))
                replies.append(reply)
        return self._emit(replies, now)

    def tick(self, now: float) -> list[Message]:
        """Periodic output due at `now`: delayed replies and linkreadies."""
        self._advance(now)
        out: list[Message] = []
        due = [p for p in self._pending if p.due <= now]
        if due:
            self._pending = [p for p in self._pending if p.due > now]
            out.extend(p.message for p in due)
        if self._silent(now):
            return self._record_sent(out, now)
        answer_at = self._linkready_answer_at
        if answer_at is not None and now >= answer_at:
            self._linkready_answer_at = None
            out.append(self.linkready())
            self._last_linkready_at = self._last_answer_at = now
        elif now >= self._periodic_linkready_at():
            out.append(self.linkready())
            self._last_linkready_at = now
        return self._record_sent(out, now)

    def next_deadline(self, now: float) -> float:
        """When tick() next has something to do (may be <= now)."""
        deadlines = [p.due for p in self._pending]
        if self.silenced_by_error:
            # Nothing to say until clear_error(); wake now and then anyway.
            deadlines.append(now + self.LINKREADY_INTERVAL_S)
        else:
            deadlines.append(max(self._periodic_linkready_at(), self._silent_until))
            if self._linkready_answer_at is not None:
                deadlines.append(max(self._linkready_answer_at, self._silent_until))
        return min(deadlines)

    def linkready(self) -> SlaveLinkready:
        return SlaveLinkready(self.twcid, self.sign, self.max_amps, self.protocol)

    def clear_error(self) -> None:
        """The 4 s reset-button press that ends an error state (§3.1)."""
        self.silenced_by_error = False

    # ---- internals ----------------------------------------------------------

    def _silent(self, now: float) -> bool:
        return self.silenced_by_error or now < self._silent_until

    def _periodic_linkready_at(self) -> float:
        if self._last_linkready_at is None:
            return float("-inf")
        due = self._last_linkready_at + self.LINKREADY_INTERVAL_S
        if self._last_master_hb_at is not None:
            due = max(due, self._last_master_hb_at + self.MASTER_SILENCE_S)
        return due

    def _advance(self, now: float) -> None:
        """Let time pass: car ramp, energy counter, plug-ins, start of charging."""
        car = self.car
        last = self._last_advance_at
        if last is None or now < last:
            last = now
        self._last_advance_at = now
        if car is None:
            return
        if car.plug_count != self._plug_count_seen:
            # A new plug-in forgets the stop ordered during the previous session.
            self._plug_count_seen = car.plug_count
            self.stopped_since_plug = False
        allowed = self.charging_allowed()
        amp_s = car.advance(now - last, self.pilot_amps if allowed else 0.0)
        self.kwh += amp_s * self._volts_per_phase() * self.phases / 3600.0 / 1000.0
        self._track_start(now)

    def _track_start(self, now: float) -> None:
        if self.charging_allowed():
            if self._charge_started_at is None:
                self._charge_started_at = now
        else:
            self._charge_started_at = None

    def _volts_per_phase(self) -> float:
        live = [v for v in self.volts if v]
        return sum(live) / len(live) if live else 0.0

    def _set_limit(self, centiamps: int) -> None:
        self.limit_centiamps = centiamps
        if centiamps == 0 and self.car is not None and self.car.plugged:
            # A stop sticks (state 03) until a new limit or a re-plug.
            self.stopped_since_plug = True
            self.car.amps = 0.0

    def _apply_command(self, data: bytes, now: float) -> None:
        cmd = data[0] if data else CMD_NO_CHANGE
        amps = int.from_bytes(data[1:3], "big") if len(data) >= 3 else 0
        p2 = self.protocol == 2
        if cmd == CMD_LIMIT_P1:
            # In protocol 2, 05 only sets the pre-charge limit and is ignored mid-charge (§3.1).
            if not p2 or not self.charging_allowed():
                self._set_limit(amps)
        elif cmd == CMD_LIMIT_P2 and p2:
            self._set_limit(amps)
        elif cmd == CMD_ACK_STOPPED:
            self._set_limit(amps)
        elif cmd == CMD_PLUS_2A and p2:
            self.limit_centiamps = min(0xFFFF, self.limit_centiamps + 200)
            self._echo_state = STATE_PLUS_2A
        elif cmd == CMD_MINUS_2A and p2:
            self.limit_centiamps = max(0, self.limit_centiamps - 200)
            self._echo_state = STATE_MINUS_2A
        elif cmd == CMD_ERROR and amps >> 8:
            # Error bitmap in byte 1: reply 02 once, then go silent until reset (§3.1).
            self._echo_state = STATE_ERROR
            self._silence_after_reply = True
        # 00 and anything unknown (09 on p1 included) keep the limit.
        self._track_start(now)

    def _debug_reply(self, msg: DebugRequest, now: float) -> DebugReply | None:
        payload_len = self.message_len - 3
        if msg.type_code == DEBUG_SERIAL_REQUEST:
            # Chars 1-2 year, 3 a fortnight letter, 7-10 the TWCID (§2.1).
            text = f"18C000{self.twcid:04X}".encode("ascii")
        elif msg.type_code == DEBUG_MODEL_REQUEST:
            text = f"SIM{self.max_amps:.0f}A-P{self.protocol}".encode("ascii")
        elif msg.type_code == DEBUG_FIRMWARE_REQUEST:
            text = bytes(self.firmware)
        else:
            return None
        payload = text[:payload_len].ljust(payload_len, b"\x00")
        # Replies are FD + the request's second byte.
        return DebugReply(0xFD00 | (msg.type_code & 0xFF), payload)

    def _emit(self, replies: list[Message], now: float) -> list[Message]:
        if not replies:
            return []
        if self.reply_delay_s > 0:
            due = now + self.reply_delay_s
            self._pending.extend(_Pending(due, m) for m in replies)
            return []
        return self._record_sent(replies, now)

    def _record_sent(self, out: list[Message], now: float) -> list[Message]:
        self.sent.extend((now, m) for m in out)
        return out
