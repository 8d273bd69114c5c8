"""Slave linkreadies (FD E2) that must not disturb the units already charging: a flood of
new IDs, and frames no real unit sends (ID 0000, a rating under any unit's floor).
Master engine + simulated units on a fake clock (tests/harness.py)."""
from __future__ import annotations

import logging

from TWCManager.twc import messages
from TWCManager.twc.messages import SlaveLinkready
from TWCManager.twc.protocol import encode_frame

from .test_master import harness, unit

CHARGER = 0x032E


def heartbeat_gaps_s(h, twcid: int, since: float) -> list[float]:
    times = [t for t, _ in h.heartbeats_to(twcid, since)]
    return [b - a for a, b in zip(times, times[1:])]


def master_log_lines(caplog, since_index: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records[since_index:] if r.name == "TWCManager.master"]


def test_linkready_flood_never_evicts_the_charging_unit(caplog):
    caplog.set_level(logging.INFO, logger="TWCManager.master")
    sim = unit(CHARGER)
    h = harness([sim])
    h.run_for(90)  # past the start-up holds: charging at the 20 A offer
    assert sim.actual_amps() > 15
    start, first_record = h.clock.mono, len(caplog.records)
    # 50 new IDs, one every 0.2 s: two fill the free places, 48 find the table full.
    for i in range(50):
        h._to_master([SlaveLinkready(0x1000 + i, 0x01, 80.0, 2)])
        h.run_for(0.2)
    h.run_for(30)
    # from its last heartbeat before the flood (it is alone: one a second)
    gaps = heartbeat_gaps_s(h, CHARGER, since=start - 1.01)
    assert gaps and max(gaps) <= 3.5, max(gaps)
    assert CHARGER in [s.twcid for s in h.master.slaves]
    assert len(h.master.slaves) <= 3
    assert sim.actual_amps() > 15
    # no line per frame: a couple of registrations and one warning for the rest
    assert len(master_log_lines(caplog, first_record)) <= 12
    assert h.master.problems.refused_linkreadies >= 48


def test_newcomer_replaces_only_a_unit_that_went_silent():
    a, b, c = unit(0x0001), unit(0x0002), unit(0x0003)
    h = harness([a, b, c])
    h.run_for(5)
    assert [s.twcid for s in h.master.slaves] == [1, 2, 3]
    h.sims.remove(b)  # unit 2 stops answering
    h.run_for(5)
    silent_s = h.master.timing.evict_silent_after_s
    assert h.clock.mono - h.master._find(2).last_heard_at < silent_s
    h._to_master([SlaveLinkready(0x0004, 0x01, 80.0, 1)])
    assert sorted(s.twcid for s in h.master.slaves) == [1, 2, 3]  # not silent long enough
    h.run_for(silent_s)
    h._to_master([SlaveLinkready(0x0004, 0x01, 80.0, 1)])
    assert sorted(s.twcid for s in h.master.slaves) == [1, 3, 4]
    # and it is answered at once, as any new unit (§4)
    assert h.heartbeats_to(0x0004)[0][0] == h.clock.mono


def test_all_zero_slave_linkready_registers_nothing(caplog):
    h = harness([])
    h.run_for(2)
    frames_before = len(h.master_frames())
    zero_p1 = encode_frame(bytes.fromhex("FD E2") + bytes(11))   # 14 bytes on the wire
    zero_p2 = encode_frame(bytes.fromhex("FD E2") + bytes(13))   # 16 bytes
    for _ in range(20):
        for frame in (zero_p1, zero_p2):
            assert h.master.on_bytes(frame, h.clock.mono) == []
    assert h.master.slaves == []
    assert len(h.master_frames()) == frames_before
    warnings = [r for r in caplog.records
                if r.name == "TWCManager.master" and r.levelno == logging.WARNING]
    assert 1 <= len(warnings) <= 2


def test_linkready_rated_below_any_floor_or_from_id_0000_is_ignored():
    h = harness([])
    h.run_for(2)
    for msg in (SlaveLinkready(0x0451, 0x01, 4.99, 2), SlaveLinkready(0x0451, 0x01, 0.0, 1),
                SlaveLinkready(0x0000, 0x01, 32.0, 2)):
        assert h.master.on_bytes(messages.to_wire(msg), h.clock.mono) == []
    assert h.master.slaves == []
    # the lowest real rating still registers
    h._to_master([SlaveLinkready(0x0451, 0x01, 12.0, 2)])
    assert [s.twcid for s in h.master.slaves] == [0x0451]
