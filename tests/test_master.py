"""The master engine against simulated slaves, frame by frame, on a fake clock
(twc-protocol.md §4, §11.1, §11.3; decisions.md §3–§4)."""
from __future__ import annotations

from datetime import timedelta

from TWCManager.twc import messages
from TWCManager.core import policy
from TWCManager.core.site import watts_per_amp
from TWCManager.twc.messages import (MasterHeartbeat, MasterLinkready1, MasterLinkready2,
                                 SlaveLinkready)
from TWCManager.core.settings import Settings
from TWCManager.sim.twc import Car, SimulatedTWC

from . import fakes
from .fakes import FakeClock
from .harness import Harness

LIMITS = policy.Limits(40, 40, 12)


def make_home(clock, settings=None, limits=LIMITS, saved=None, **kw):
    return fakes.make_home(clock, settings, limits, saved=saved, **kw)


def unit(twcid=0x032E, protocol=1, max_amps=80.0, car="charging", **kw) -> SimulatedTWC:
    car_obj = None if car is None else Car(mode=car, car_max_amps=max_amps)
    return SimulatedTWC(twcid, 0x01, protocol=protocol, max_amps=max_amps, car=car_obj, **kw)


def harness(sims, clock=None, **kw) -> Harness:
    clock = clock or FakeClock()
    home = make_home(clock, **kw)
    h = Harness(home.master, sims, clock, site=home.site)
    h.start()
    return h


def test_startup_linkready_burst_then_no_heartbeat_while_announcing():
    h = harness([])
    h.run_for(2.0)
    frames = h.master_frames()
    kinds = [type(m) for _, m, _ in frames]
    assert kinds == [MasterLinkready1] * 5 + [MasterLinkready2] * 5
    # §11.1 vectors: what goes on the wire, byte for byte
    assert frames[0][2] == bytes.fromhex("C0 FC E1 77 77 77 00 00 00 00 00 00 00 00 46 C0")
    assert frames[5][2] == bytes.fromhex("C0 FB E2 77 77 77 00 00 00 00 00 00 00 00 47 C0")
    gaps = [b[0] - a[0] for a, b in zip(frames, frames[1:])]
    assert all(0.09 <= g <= 0.15 for g in gaps)


def test_immediate_heartbeat_after_linkready_and_protocol_lengths():
    p1, p2 = unit(0x032E, protocol=1), unit(0x0451, protocol=2, max_amps=32.0)
    h = harness([p1, p2])
    h.run_for(3.0)
    # Each slave's linkready is answered at once with an all-zero heartbeat (§11.1).
    for sim, data_len in ((p1, 7), (p2, 9)):
        linkready_at = next(t for t, m in sim.sent if isinstance(m, SlaveLinkready))
        first_t, first = h.heartbeats_to(sim.twcid)[0]
        assert first_t - linkready_at < 0.01
        assert first.data == bytes(data_len)
    frame_p2 = next(f for t, d, m, f in h.wire
                    if d == "M" and isinstance(m, MasterHeartbeat) and m.receiver_id == 0x0451)
    assert frame_p2 == messages.to_wire(MasterHeartbeat(0x7777, 0x0451, bytes(9)))
    # decisions §4.4: protocol 1 gets 7 data bytes (a 14-byte message), not 9.
    assert all(len(m.data) == 7 for _, m in h.heartbeats_to(0x032E))
    assert all(len(m.data) == 9 for _, m in h.heartbeats_to(0x0451))


def test_one_heartbeat_a_second_round_robin():
    a, b = unit(0x0001), unit(0x0002)
    h = harness([a, b])
    h.run_for(2.0)
    start = h.clock.mono
    h.run_for(20.0)
    beats = [(t, m.receiver_id) for t, m, _ in h.master_frames(since=start)
             if isinstance(m, MasterHeartbeat)]
    gaps = [t2 - t1 for (t1, _), (t2, _) in zip(beats, beats[1:])]
    assert all(0.99 <= g <= 1.01 for g in gaps[2:])
    receivers = [r for _, r in beats[2:]]
    assert all(x != y for x, y in zip(receivers, receivers[1:]))  # they alternate


def test_spike_then_settle_on_the_wire():
    """§11.3 scenario 3 with the bytes: 05 00 00 during the hold, then 21 A, then 20 A."""
    sim = unit()
    h = harness([sim])
    h.run_for(80)
    commands = [m.data[:3] for _, m in h.heartbeats_to(0x032E)]
    assert bytes.fromhex("050000") in commands
    assert bytes.fromhex("050834") in commands           # 21.00 A
    assert bytes.fromhex("0507D0") in commands           # 20.00 A
    assert commands.index(bytes.fromhex("050834")) < commands.index(bytes.fromhex("0507D0"))
    # once the slave echoes 20.00 A the master says "no change"
    assert commands[-1] == bytes(3)
    assert 19 <= sim.actual_amps() <= 20


def test_zero_amps_is_sent_with_the_limit_command_not_no_change():
    # Sending 05/09 0 A every second avoids the relay clicking (§3.1).
    sim = unit(protocol=2, max_amps=32.0)
    h = harness([sim], settings=Settings(non_scheduled_amps=0))
    h.run_for(3)  # past the linkready exchange and its no-change answers
    since = h.clock.mono
    h.run_for(10)
    assert {m.data for _, m in h.heartbeats_to(0x032E, since)} == {bytes.fromhex("09") + bytes(8)}


def test_at_most_three_slaves_a_fourth_is_ignored_while_all_answer():
    # A newcomer only replaces a unit that went silent (tests/test_linkready_safety.py).
    sims = [unit(i) for i in (1, 2, 3)]
    h = harness(sims)
    h.run_for(3)
    assert [s.twcid for s in h.master.slaves] == [1, 2, 3]
    late = unit(4)
    h.sims.append(late)
    h.run_for(3)
    assert any(isinstance(m, SlaveLinkready) for _, m in late.sent)
    assert sorted(s.twcid for s in h.master.slaves) == [1, 2, 3]
    assert h.heartbeats_to(4) == []


def test_silent_slave_dropped_after_26s():
    """§11.3 scenario 6."""
    sim = unit()
    h = harness([sim])
    h.run_for(5)
    assert len(h.master.slaves) == 1
    h.connected = False
    h.run_for(25)
    assert len(h.master.slaves) == 1       # still heartbeating it
    h.run_for(3)
    assert h.master.slaves == []
    before = len(h.heartbeats_to(0x032E))
    h.run_for(5)
    assert len(h.heartbeats_to(0x032E)) == before


def test_another_master_is_reported():
    h = harness([unit()])
    h.run_for(3)
    h._to_master([MasterLinkready2(0x1234, 0x55)])
    assert h.master.problems.other_master_id == 0x1234
    h._to_master([MasterLinkready1(0x4321, 0x55)])
    assert h.master.problems.other_master_id == 0x4321


def test_our_own_echo_is_not_another_master():
    h = harness([])
    h.run_for(0.05)
    echo = h.master_frames()[0][2]
    h.master.on_bytes(echo, h.clock.mono)
    assert h.master.problems.other_master_id is None
    assert h.master.problems.id_clashes == 0


def test_slave_with_our_id_makes_us_pick_a_new_one():
    # decisions §4.6: the original crashed (a TypeError) and stalled 5 s.
    h = harness([])
    h.run_for(2)
    h._to_master([SlaveLinkready(0x7777, 0x01, 80.0, 1)])
    assert h.master.master_id != 0x7777
    assert h.master.problems.id_clashes == 1
    start = h.clock.mono
    h.run_for(2)
    announced = [m for _, m, _ in h.master_frames(since=start)
                 if isinstance(m, (MasterLinkready1, MasterLinkready2))]
    assert len(announced) == 10
    assert {m.sender_id for m in announced} == {h.master.master_id}


def test_heartbeat_from_unknown_slave_gets_no_reply():
    h = harness([])
    h.run_for(2)
    count = len(h.master_frames())
    h._to_master([messages.SlaveHeartbeat(0x0999, 0x7777, bytes(7))])
    assert len(h.master_frames()) == count
    assert h.master.slaves == []


def test_policy_runs_with_no_slave_connected():
    # decisions §4.7: charge-now expires and is saved with nobody on the bus.
    clock = FakeClock()
    saved = []
    settings = Settings(non_scheduled_amps=8, charge_now_amps=40,
                        charge_now_until_at_wall=clock.wall().timestamp() + 5)
    h = harness([], clock=clock, settings=settings, saved=saved)
    h.run_for(3)
    assert h.site.pool.source == policy.CHARGE_NOW
    h.run_for(5)
    assert settings.charge_now_amps == 0 and saved == ["charge now expired"]
    assert h.site.pool.source == policy.NON_SCHEDULED


def test_wiring_above_rating_is_reported_and_unit_capped():
    sim = unit(protocol=2, max_amps=32.0)
    h = harness([sim], settings=Settings(non_scheduled_amps=40))
    h.run_for(80)
    slave = h.master.slaves[0]
    assert slave.config_errors and "32" in slave.config_errors[0]
    assert slave.offered_amps == 32 and sim.limit_amps == 32.0


def test_settings_change_reaches_the_next_heartbeat():
    sim = unit()
    h = harness([sim])
    h.run_for(90)
    assert sim.limit_amps == 20.0
    h.site.settings.non_scheduled_amps = 30
    h.master.settings_changed(h.clock.mono)
    before = h.clock.mono
    h.run_for(1.01)
    beats = h.heartbeats_to(0x032E, since=before)
    assert beats[0][1].data[:3] == bytes.fromhex("050BB8")  # 30.00 A at the very next one
    assert beats[0][0] - before <= 0.26  # sent early: a command need not wait a second


def test_override_heartbeat_data_pads_per_protocol():
    sim = unit(protocol=1)
    h = harness([sim])
    h.run_for(3)
    h.master.override_heartbeat_data = bytes.fromhex("050258")
    before = h.clock.mono
    h.run_for(2)
    assert {m.data for _, m in h.heartbeats_to(0x032E, since=before)} == {
        bytes.fromhex("05025800000000")}


def test_idle_unit_with_no_car_is_released():
    """decisions §4.9 on the wire: an empty unit stops being offered power."""
    car_unit, empty = unit(0x0001), unit(0x0002, car="unplugged")
    h = harness([empty, car_unit], settings=Settings(non_scheduled_amps=30))
    h.run_for(60 + policy.Holds().idle_give_up_s + 20)
    assert h.master.slaves[0].idle
    assert empty.limit_amps == 0 and car_unit.limit_amps == 30
    # the car arrives: it gets power within a few heartbeats (after the restart hold)
    h.run_for(60)
    empty.car.set_mode("charging")
    h.run_for(10)
    assert empty.actual_amps() > 5
    h.run_for(30)
    assert empty.limit_amps == car_unit.limit_amps == 15


def test_schedule_starts_with_no_slave_connected():
    # decisions §4.7: the pool follows the wall clock without any heartbeat.
    clock = FakeClock()
    start = clock.wall() + timedelta(seconds=90)
    settings = Settings(non_scheduled_amps=0, scheduled_amps=16,
                        scheduled_start_min=start.hour * 60 + start.minute,
                        scheduled_end_min=(start.hour * 60 + start.minute + 60) % 1440,
                        scheduled_days_bitmap=127)
    h = harness([], clock=clock, settings=settings)
    h.run_for(10)
    assert h.site.pool.source == policy.NON_SCHEDULED
    h.run_for(100)
    assert (h.site.pool.source, h.site.pool.amps) == (policy.SCHEDULED, 16.0)


def test_kwh_and_volts_are_polled_between_heartbeats():
    """FB EB every 60 s to protocol-2 units, in the middle of a heartbeat gap; the
    heartbeat cadence is not disturbed; the volts give the watts per amp (§4.15)."""
    p2, p1 = unit(0x0451, protocol=2, max_amps=32.0), unit(0x032E, protocol=1)
    p2.volts = (231, 229, 230)
    h = harness([p2, p1])
    h.run_for(130)
    polls = [(t, m) for t, d, m, _ in h.wire if d == "M" and isinstance(m, messages.KwhRequest)]
    assert [m.receiver_id for _, m in polls] == [0x0451] * len(polls) and 2 <= len(polls) <= 3
    beats = [t for t, d, m, _ in h.wire if d == "M" and isinstance(m, MasterHeartbeat)]
    for t, _ in polls:  # never right after a heartbeat, never right before the next one
        before = max(b for b in beats if b <= t)
        after = min(b for b in beats if b > t)
        assert t - before >= 0.39 and after - t >= 0.39
    steady = [b for b in beats if b > beats[0] + 10]
    gaps = [b - a for a, b in zip(steady, steady[1:])]
    assert max(gaps) < 1.01 and min(gaps) > 0.99
    slave = next(s for s in h.master.slaves if s.twcid == 0x0451)
    assert slave.volts == (231, 229, 230) and slave.kwh >= 119
    assert watts_per_amp(h.master.slaves) == 690


def test_green_tracking_stops_without_re_arming_the_hold_but_fixed_pools_keep_it():
    """decisions §3 keeps the 60 s stop hold; in green tracking lowering the limit to
    follow a cloud no longer re-arms it (README "Green tracking"); a fixed pool keeps the
    original rule (§6.5 step 9)."""
    def stop_after(green_mode: bool) -> float:
        pool = {"amps": 20.0}
        settings = Settings(non_scheduled_amps=-1 if green_mode else 20)
        clock = FakeClock()
        home = fakes.make_home(clock, settings, LIMITS, green=lambda *args: pool["amps"])
        master = home.master
        sim = unit()
        h = Harness(master, [sim], clock, site=home.site)
        h.start()

        def set_pool(amps: float) -> None:
            pool["amps"] = amps
            if not green_mode:
                home.settings.non_scheduled_amps = int(amps)
            master.settings_changed(clock.mono)

        h.run_for(150)
        assert sim.limit_amps == 20.0
        set_pool(14)
        h.run_for(10)                       # lowered: the offer and the draw change
        assert sim.limit_amps == 14.0
        set_pool(8)                         # below the 12 A minimum
        cut_at = clock.mono
        h.run_for(90)
        zeros = [t for t, m in h.heartbeats_to(0x032E, since=cut_at)
                 if m.data[:3] == bytes.fromhex("050000")]
        assert zeros, "never stopped"
        return zeros[0] - cut_at

    assert stop_after(green_mode=True) <= 1.5
    assert stop_after(green_mode=False) >= 55
