"""The simulated TWC slave and car, driven with explicit times (no I/O, no sleeping)."""
from __future__ import annotations

import pytest

from TWCManager.twc.messages import (
    DEBUG_FIRMWARE_REQUEST,
    DEBUG_MODEL_REQUEST,
    DEBUG_SERIAL_REQUEST,
    DEBUG_SILENCE,
    DebugReply,
    DebugRequest,
    KwhReport,
    KwhRequest,
    MasterHeartbeat,
    MasterLinkready1,
    MasterLinkready2,
    SlaveHeartbeat,
    SlaveLinkready,
    heartbeat_command,
    parse_message,
)
from TWCManager.twc.protocol import FrameDecoder, encode_frame
from TWCManager.sim.twc import Car, SimulatedTWC

MASTER = 0x7777
TWCID = 0x032E


def hb(twc: SimulatedTWC, now: float, command: int = 0, amps: float = 0.0,
       protocol: int | None = None, receiver: int | None = None) -> SlaveHeartbeat:
    """Send one master heartbeat; return the single slave heartbeat it must produce."""
    data = heartbeat_command(command, amps, protocol or twc.protocol)
    replies = twc.on_message(MasterHeartbeat(MASTER, receiver or twc.twcid, data), now)
    assert len(replies) == 1, replies
    reply = replies[0]
    assert isinstance(reply, SlaveHeartbeat)
    assert reply.sender_id == twc.twcid and reply.receiver_id == MASTER
    return reply


def wire_roundtrip(msg):
    """Encode to a frame and decode it again, as the master would see it."""
    decoded = FrameDecoder().feed(encode_frame(msg.to_body()))
    assert len(decoded) == 1
    return decoded[0], parse_message(decoded[0])


def make(protocol: int = 2, car_mode: str | None = "charging", **kwargs) -> SimulatedTWC:
    car = Car(car_mode) if car_mode else None
    return SimulatedTWC(TWCID, 0x01, protocol=protocol, car=car, **kwargs)


# ---- linkready ---------------------------------------------------------------


def test_linkready_at_start_then_every_10_s_without_master():
    twc = make()
    out = twc.tick(100.0)
    assert out == [SlaveLinkready(TWCID, 0x01, 32.0, 2)]
    assert twc.next_deadline(100.0) == pytest.approx(110.0)
    assert twc.tick(105.0) == []
    assert twc.tick(109.9) == []
    assert [type(m) for m in twc.tick(110.0)] == [SlaveLinkready]
    assert twc.tick(115.0) == []
    assert [type(m) for m in twc.tick(120.0)] == [SlaveLinkready]


def test_linkready_stops_while_heartbeats_arrive_and_resumes_after_10_s_silence():
    twc = make()
    twc.tick(0.0)
    for second in range(1, 40):
        hb(twc, float(second))
        assert twc.tick(second + 0.5) == []
    # Last heartbeat at 39 s: quiet until 49 s, then linkready every 10 s again.
    assert twc.next_deadline(39.5) == pytest.approx(49.0)
    assert twc.tick(48.9) == []
    assert [type(m) for m in twc.tick(49.0)] == [SlaveLinkready]
    assert twc.tick(55.0) == []
    assert [type(m) for m in twc.tick(59.0)] == [SlaveLinkready]


def test_master_linkready2_is_answered_within_0_2_s_and_rate_limited():
    twc = make()
    twc.tick(0.0)
    assert twc.on_message(MasterLinkready2(MASTER, 0x77), 3.0) == []
    deadline = twc.next_deadline(3.0)
    assert 3.0 < deadline <= 3.2
    assert [type(m) for m in twc.tick(deadline)] == [SlaveLinkready]
    # The master's burst of five linkready2 (126 ms apart) gets one answer, not five.
    answers = []
    now = 5.0
    for _ in range(5):
        answers += twc.on_message(MasterLinkready2(MASTER, 0x77), now)
        if twc.next_deadline(now) <= now + 0.126:
            answers += twc.tick(twc.next_deadline(now))
        now += 0.126
    answers += twc.tick(now)
    assert [type(m) for m in answers] == [SlaveLinkready]
    # A later linkready2 (a master restart) is answered again.
    twc.on_message(MasterLinkready2(MASTER, 0x77), 8.0)
    assert [type(m) for m in twc.tick(8.1)] == [SlaveLinkready]
    assert twc.master_id == MASTER


def test_master_linkready1_alone_is_not_answered():
    twc = make()
    twc.tick(0.0)
    assert twc.on_message(MasterLinkready1(MASTER, 0x77), 1.0) == []
    assert twc.tick(1.5) == []


@pytest.mark.parametrize("protocol, max_amps, length, data_len", [(1, 80.0, 14, 7), (2, 32.0, 16, 9)])
def test_lengths_by_protocol(protocol, max_amps, length, data_len):
    twc = SimulatedTWC(TWCID, 0x01, protocol=protocol, max_amps=max_amps, car=Car("charging"))
    (linkready,) = twc.tick(0.0)
    raw, parsed = wire_roundtrip(linkready)
    assert len(raw) == length
    assert parsed == SlaveLinkready(TWCID, 0x01, max_amps, protocol)
    reply = hb(twc, 1.0)
    raw, parsed = wire_roundtrip(reply)
    assert len(raw) == length and len(parsed.data) == data_len


def test_protocol1_slave_accepts_9_byte_master_data():
    # The original master sent 9 data bytes to everyone (§2.1).
    twc = make(protocol=1)
    reply = hb(twc, 1.0, command=0x05, amps=16.0, protocol=2)
    assert len(reply.data) == 7
    assert reply.limit_amps == 16.0
    assert twc.commands == [(1.0, heartbeat_command(0x05, 16.0, 2))]
    assert twc.heartbeats_received == 1


# ---- commands and states ------------------------------------------------------


def test_no_car_reports_ready_with_idle_offset():
    twc = make(car_mode=None)
    reply = hb(twc, 1.0, command=0x09, amps=16.0)
    assert reply.state == 0x00
    assert reply.actual_amps == 0.25
    assert reply.limit_amps == 16.0


def test_unplugged_car_reports_ready():
    twc = make(car_mode="unplugged")
    assert hb(twc, 1.0).state == 0x00


def test_car_wanting_charge_with_no_limit_reports_04():
    twc = make()
    reply = hb(twc, 1.0)
    assert (reply.state, reply.limit_amps, reply.actual_amps) == (0x04, 0.0, 0.25)


def test_zero_amps_stops_and_sticks_as_03_until_a_new_limit():
    twc = make()
    hb(twc, 1.0, 0x09, 16.0)
    for t in (2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0):
        reply = hb(twc, t)
    assert reply.state == 0x01 and reply.actual_amps == pytest.approx(15.5)
    stop = hb(twc, 9.0, 0x09, 0.0)
    assert (stop.state, stop.limit_amps, stop.actual_amps) == (0x03, 0.0, 0.25)
    assert hb(twc, 10.0).state == 0x03  # 00 keeps the stop
    restart = hb(twc, 11.0, 0x09, 6.0)
    assert restart.state == 0x08 and restart.limit_amps == 6.0


def test_zero_amps_before_any_charge_gives_03_not_04():
    twc = make()
    assert hb(twc, 1.0).state == 0x04
    assert hb(twc, 2.0, 0x09, 0.0).state == 0x03


def test_replug_forgets_the_stop():
    twc = make()
    hb(twc, 1.0, 0x09, 0.0)
    assert hb(twc, 2.0).state == 0x03
    twc.car.set_mode("unplugged")
    assert hb(twc, 3.0).state == 0x00
    twc.car.set_mode("charging")
    assert hb(twc, 4.0).state == 0x04


def test_start_reports_08_for_one_second_then_01_and_ramps():
    twc = make()
    start = hb(twc, 10.0, 0x09, 8.0)
    assert (start.state, start.limit_amps, start.actual_amps) == (0x08, 8.0, 0.25)
    assert hb(twc, 10.5).state == 0x08
    one_s = hb(twc, 11.0)
    assert one_s.state == 0x01
    assert one_s.actual_amps == pytest.approx(3.0)  # 3 A/s ramp
    assert hb(twc, 12.0).actual_amps == pytest.approx(6.0)
    settled = hb(twc, 13.0)
    assert settled.actual_amps == pytest.approx(7.5)  # 0.5 A below the 8 A limit
    assert hb(twc, 20.0).actual_amps == pytest.approx(7.5)


def test_lowered_limit_is_followed_down():
    twc = make()
    hb(twc, 0.0, 0x09, 32.0)
    assert hb(twc, 20.0).actual_amps == pytest.approx(31.5)
    hb(twc, 21.0, 0x09, 10.0)
    assert hb(twc, 25.0).actual_amps == pytest.approx(9.5)


def test_limit_below_5_amps_draws_nothing():
    twc = make()
    hb(twc, 0.0, 0x09, 4.0)
    reply = hb(twc, 10.0)
    assert reply.actual_amps == 0.25
    assert reply.state == 0x04  # never stopped with 0 A
    assert reply.limit_amps == 4.0


def test_car_max_amps_caps_the_draw():
    twc = SimulatedTWC(TWCID, 1, protocol=2, max_amps=80.0, car=Car("charging", car_max_amps=16.0))
    hb(twc, 0.0, 0x09, 40.0)
    assert hb(twc, 30.0).actual_amps == pytest.approx(15.5)


def test_absurd_limit_is_echoed_but_the_unit_caps_at_its_rating():
    twc = SimulatedTWC(TWCID, 1, protocol=2, max_amps=32.0, car=Car("charging", car_max_amps=80.0))
    reply = hb(twc, 0.0, 0x09, 655.35)
    assert reply.limit_amps == 655.35
    assert hb(twc, 30.0).actual_amps == pytest.approx(31.5)


def test_command_00_keeps_the_limit():
    twc = make()
    hb(twc, 0.0, 0x09, 12.0)
    assert hb(twc, 1.0, 0x00).limit_amps == 12.0


def test_protocol1_uses_05_and_ignores_09():
    twc = make(protocol=1)
    assert hb(twc, 0.0, 0x05, 20.0).limit_amps == 20.0
    assert hb(twc, 1.0, 0x09, 10.0).limit_amps == 20.0
    stop = hb(twc, 2.0, 0x05, 0.0)
    assert (stop.state, stop.limit_amps) == (0x03, 0.0)


def test_protocol2_05_sets_the_precharge_limit_but_is_ignored_mid_charge():
    twc = make(protocol=2)
    assert hb(twc, 0.0, 0x05, 10.0).limit_amps == 10.0  # not charging yet: taken
    assert hb(twc, 5.0).state == 0x01
    assert hb(twc, 6.0, 0x05, 20.0).limit_amps == 10.0  # charging: ignored
    assert hb(twc, 7.0, 0x05, 0.0).state == 0x01
    assert hb(twc, 8.0, 0x09, 20.0).limit_amps == 20.0


def test_full_and_plugged_cars_report_03():
    twc = make()
    hb(twc, 0.0, 0x09, 16.0)
    assert hb(twc, 10.0).state == 0x01
    twc.car.set_mode("full")
    full = hb(twc, 11.0)
    assert (full.state, full.actual_amps) == (0x03, 0.25)
    twc.car.set_mode("plugged")
    assert hb(twc, 12.0).state == 0x03
    twc.car.set_mode("charging")
    assert hb(twc, 12.5).state == 0x08


def test_error_command_is_answered_once_then_silence_until_cleared():
    twc = make()
    assert hb(twc, 0.0, 0x02, 0.0).state == 0x04  # bitmap 0: no error
    data = bytes([0x02, 0x04]) + bytes(7)
    (reply,) = twc.on_message(MasterHeartbeat(MASTER, TWCID, data), 1.0)
    assert reply.state == 0x02
    assert twc.on_message(MasterHeartbeat(MASTER, TWCID, bytes(9)), 2.0) == []
    assert twc.tick(30.0) == []
    twc.clear_error()
    assert hb(twc, 31.0).state == 0x04


def test_debug_silence_mutes_the_unit_for_5_s():
    twc = make()
    twc.tick(0.0)
    twc.on_message(DebugRequest(DEBUG_SILENCE, bytes(11)), 1.0)
    assert twc.on_message(MasterHeartbeat(MASTER, TWCID, bytes(9)), 2.0) == []
    assert twc.on_message(MasterLinkready2(MASTER, 0x77), 3.0) == []
    assert twc.tick(5.9) == []
    assert hb(twc, 6.5).state == 0x04


# ---- kWh and debug replies ----------------------------------------------------------


def test_kwh_request_reply_decodes_to_kwh_and_volts():
    twc = make(kwh=20.0, volts=(246, 0, 0))
    (reply,) = twc.on_message(KwhRequest(MASTER, TWCID), 1.0)
    raw, parsed = wire_roundtrip(reply)
    assert len(raw) == 16
    assert parsed == KwhReport(TWCID, 20, (246, 0, 0), 16)


def test_kwh_accumulates_actual_times_volts_times_phases():
    # Three phases at 230 V, 15.5 A for one hour: 230 * 3 * 15.5 = 10.695 kWh.
    twc = make(kwh=100.0, volts=(230, 230, 230))
    hb(twc, 0.0, 0x09, 16.0)
    hb(twc, 100.0)  # ramped long ago
    start_kwh = twc.kwh
    hb(twc, 3700.0)
    assert twc.kwh - start_kwh == pytest.approx(10.695, rel=1e-6)
    (report,) = twc.on_message(KwhRequest(MASTER, TWCID), 3700.0)
    assert report.kwh == int(twc.kwh)


def test_single_phase_counts_one_phase():
    twc = make(kwh=0.0, volts=(240, 0, 0))
    hb(twc, 0.0, 0x09, 16.0)
    hb(twc, 100.0)
    start_kwh = twc.kwh
    hb(twc, 3700.0)
    assert twc.kwh - start_kwh == pytest.approx(0.240 * 15.5)


def test_no_energy_while_stopped():
    twc = make(kwh=5.0)
    hb(twc, 0.0, 0x09, 0.0)
    hb(twc, 3600.0)
    assert twc.kwh == 5.0


@pytest.mark.parametrize("protocol, version", [(2, (4, 5, 3)), (1, (1, 5, 8))])
def test_debug_requests_get_replies(protocol, version):
    twc = make(protocol=protocol)
    payload_len = 11 if protocol == 1 else 13
    (fw,) = twc.on_message(DebugRequest(DEBUG_FIRMWARE_REQUEST, bytes(payload_len)), 1.0)
    raw, parsed = wire_roundtrip(fw)
    assert isinstance(parsed, DebugReply) and parsed.type_code == 0xFD1B
    assert parsed.firmware_version == version
    assert len(raw) == payload_len + 3
    (serial,) = twc.on_message(DebugRequest(DEBUG_SERIAL_REQUEST, bytes(payload_len)), 1.0)
    assert serial.type_code == 0xFD19 and serial.text[6:10] == "032E"
    (model,) = twc.on_message(DebugRequest(DEBUG_MODEL_REQUEST, bytes(payload_len)), 1.0)
    assert model.type_code == 0xFD1A and model.text


def test_reply_delay_moves_the_reply_to_tick():
    twc = make(reply_delay_s=0.05)
    twc.tick(0.0)
    data = heartbeat_command(0, 0, 2)
    assert twc.on_message(MasterHeartbeat(MASTER, TWCID, data), 1.0) == []
    assert twc.next_deadline(1.0) == pytest.approx(1.05)
    assert twc.tick(1.04) == []
    (reply,) = twc.tick(1.05)
    assert isinstance(reply, SlaveHeartbeat) and reply.state == 0x04


# ---- two units on one bus -----------------------------------------------------------


def test_two_units_answer_only_what_is_addressed_to_them():
    a = SimulatedTWC(0x032E, 1, car=Car("charging"))
    b = SimulatedTWC(0x032F, 2, car=Car("unplugged"), answer_debug=False)
    bus = [a, b]

    def deliver(msg, now):
        out = []
        for unit in bus:
            out += unit.on_message(msg, now)
        return out

    (to_a,) = deliver(MasterHeartbeat(MASTER, 0x032E, heartbeat_command(9, 10, 2)), 1.0)
    assert to_a.sender_id == 0x032E and to_a.limit_amps == 10.0
    (to_b,) = deliver(MasterHeartbeat(MASTER, 0x032F, bytes(9)), 1.5)
    assert to_b.sender_id == 0x032F and to_b.state == 0x00 and to_b.limit_amps == 0.0
    (kwh_b,) = deliver(KwhRequest(MASTER, 0x032F), 2.0)
    assert kwh_b.sender_id == 0x032F
    assert deliver(MasterHeartbeat(MASTER, 0x0999, bytes(9)), 2.5) == []
    # Another slave's traffic is not for us either.
    assert deliver(SlaveHeartbeat(0x0999, MASTER, bytes(9)), 3.0) == []
    # Unaddressed debug requests: only the unit told to answer does.
    (dbg,) = deliver(DebugRequest(DEBUG_FIRMWARE_REQUEST, bytes(13)), 3.5)
    assert dbg.type_code == 0xFD1B
    assert a.heartbeats_received == 1 and b.heartbeats_received == 1
    assert [d for _, d in a.commands] == [heartbeat_command(9, 10, 2)]


# ---- the car alone ------------------------------------------------------------------


def test_car_ramp_and_limits():
    car = Car("charging", car_max_amps=32.0, ramp_amps_per_s=3.0)
    assert car.advance(1.0, 8.0) == pytest.approx(1.5)  # 0 -> 3 A: 1.5 A*s
    assert car.amps == pytest.approx(3.0)
    car.advance(10.0, 8.0)
    assert car.amps == pytest.approx(7.5)
    car.advance(1.0, 4.9)
    assert car.amps == 0.0
    with pytest.raises(ValueError):
        car.set_mode("driving")
    car.set_mode("unplugged")
    assert not car.plugged
    plugs = car.plug_count
    car.set_mode("plugged")
    assert car.plug_count == plugs + 1 and not car.wants_charge
