"""Master engine + simulated slaves wired through real frames, on a fake clock.

Every frame goes through encode → bytes → FrameDecoder → parse, both ways, so the
pure tests exercise the same bytes as the wire. Time jumps from deadline to deadline.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from TWCManager.twc import messages
from TWCManager.twc.master import Master
from TWCManager.twc.messages import MasterHeartbeat
from TWCManager.twc.protocol import FrameDecoder

from .fakes import FakeClock


@dataclass
class Harness:
    master: Master
    sims: list
    clock: FakeClock
    wire: list = field(default_factory=list)   # (time, "M"/"S", Message, raw frame)
    _decoder: FrameDecoder = field(default_factory=FrameDecoder)
    connected: bool = True
    site: object = None          # the site core the master plans with (tests/fakes.make_home)

    def start(self) -> None:
        self.master.start(self.clock.mono)

    def _from_master(self, frames: list[bytes]) -> None:
        now = self.clock.mono
        for frame in frames:
            for raw in self._decoder.feed(frame):
                msg = messages.parse_message(raw)
                self.wire.append((now, "M", msg, frame))
                if not self.connected:
                    continue
                for sim in self.sims:
                    self._to_master(sim.on_message(msg, now))

    def _to_master(self, replies: list) -> None:
        now = self.clock.mono
        for reply in replies:
            frame = messages.to_wire(reply)
            self.wire.append((now, "S", reply, frame))
            self._from_master(self.master.on_bytes(frame, now))

    def run_until(self, t_end: float) -> None:
        while True:
            now = self.clock.mono
            deadlines = [self.master.next_deadline()]
            if self.connected:
                deadlines += [sim.next_deadline(now) for sim in self.sims]
            t = max(min(deadlines), now)
            if t > t_end:
                self.clock.advance(t_end - now)
                return
            # Never stand still: a deadline that produced nothing must not spin.
            self.clock.advance(max(t - now, 0.001))
            self._from_master(self.master.on_tick(self.clock.mono))
            if self.connected:
                for sim in self.sims:
                    self._to_master(sim.tick(self.clock.mono))

    def run_for(self, seconds: float) -> None:
        self.run_until(self.clock.mono + seconds)

    def heartbeats_to(self, twcid: int, since: float = float("-inf")) -> list:
        return [(t, m) for t, d, m, _ in self.wire
                if d == "M" and isinstance(m, MasterHeartbeat) and m.receiver_id == twcid
                and t >= since]

    def master_frames(self, since: float = float("-inf")) -> list:
        return [(t, m, f) for t, d, m, f in self.wire if d == "M" and t >= since]
