"""The daemon's side of the SysV IPC (original-program.md §8, decisions.md §4.3, 4.11,
4.12): exact getStatus, every command, bad input, packets, staleness, floods."""
from __future__ import annotations

import random
import struct
import threading
import time

import pytest
import sysv_ipc

from TWCManager.ipc import wire as ipc
from TWCManager.twc import messages
from TWCManager.core import policy
from TWCManager.ipc.commands import handle_request
from TWCManager.ipc.status import Context
from TWCManager.ipc.wire import BadRequest, reply_bodies
from TWCManager.twc.messages import DebugReply, SlaveLinkready
from TWCManager.twc.protocol import FrameDecoder, checksum
from TWCManager.core.settings import Settings
from TWCManager.twc.slave import SlaveTWC

from . import fakes
from .test_daemon_pty import Rig, charging_unit
from .util import wait_until

LIMITS = policy.Limits(40, 40, 12)


def make_home(settings=None, limits=LIMITS, clock=None):
    return fakes.make_home(clock, settings, limits)


def add_slave(master, twcid, rated, actual, offered, state, protocol=1, changed=True):
    slave = SlaveTWC(twcid=twcid, sign=1, protocol=protocol, rated_amps=rated, registered_at=0)
    slave.actual_amps, slave.offered_amps, slave.state = actual, offered, state
    slave.offer_ever_changed = changed
    master.slaves.append(slave)
    return slave


class Recorder:
    def __init__(self, master, now_wall_s=1_800_000_000.0):
        self.saved, self.sent = [], []
        self.ctx = Context(now=1000.0, now_wall_s=now_wall_s, save_settings=self.saved.append,
                           send=self.sent.append)


# ------------------------------------------------------------------ getStatus

def test_get_status_two_slaves_matches_the_original():
    home = make_home()
    home.site.pool = policy.PoolDecision(20.0, policy.NON_SCHEDULED, "")
    add_slave(home.master, 0x032E, 80.0, 19.2, 20, 1)
    add_slave(home.master, 0x0451, 80.0, 0.0, 12, 0)
    reply = handle_request("getStatus", home, Recorder(home).ctx)
    assert reply.text == ("20.00`40.00`12.00`0.00`20`-1`-1:00`-1:00`127`-1:00`0`2"
                          "`032E~80.0~19.20~20~1`0451~80.0~0.00~12~0")


def test_get_status_no_slaves():
    home = make_home(Settings(non_scheduled_amps=8))
    home.site.pool = policy.PoolDecision(8.0, policy.NON_SCHEDULED, "")
    assert handle_request("getStatus", home, Recorder(home).ctx).text == (
        "8.00`40.00`12.00`0.00`8`-1`-1:00`-1:00`127`-1:00`0`0")


def test_get_status_charge_now_schedule_and_first_offer_as_float():
    rec_wall = 1_800_000_000.0
    settings = Settings(non_scheduled_amps=8, scheduled_amps=16, scheduled_start_min=21 * 60,
                        scheduled_end_min=7 * 60, scheduled_days_bitmap=127,
                        resume_green_min=6 * 60 + 30, charge_now_amps=40,
                        charge_now_until_at_wall=rec_wall + 3600)
    home = make_home(settings)
    home.site.pool = policy.PoolDecision(40.0, policy.CHARGE_NOW, "")
    add_slave(home.master, 0x032E, 80.0, 0.0, 0, 3, changed=False)
    assert handle_request("getStatus", home, Recorder(home, rec_wall).ctx).text == (
        "40.00`40.00`12.00`40.00`8`16`21:00`07:00`127`06:30`0`1`032E~80.0~0.00~0.0~3")


def test_hhmm_is_exact_for_every_minute_through_the_queue_text():
    # decisions §4.2: the original showed 06:20 as 06:19. Set through the command
    # text as the PHP page sends it, read back through getStatus.
    home = make_home()
    rec = Recorder(home)
    for minute in range(24 * 60):
        hhmm = f"{minute // 60:02d}:{minute % 60:02d}"
        handle_request(f"setResumeTrackGreenEnergyTime={hhmm}", home, rec.ctx)
        assert handle_request("getStatus", home, rec.ctx).text.split("`")[9] == hhmm


def test_pool_never_negative_in_status():
    home = make_home(Settings(non_scheduled_amps=-1))
    home.site.pool = policy.PoolDecision(-2.79, policy.GREEN, "")
    assert handle_request("getStatus", home, Recorder(home).ctx).text.startswith("0.00`")


# ------------------------------------------------------------------ commands

@pytest.mark.parametrize("text, field, value", [
    ("setNonScheduledAmps=16", "non_scheduled_amps", 16),
    ("setNonScheduledAmps=-1", "non_scheduled_amps", -1),
    ("setNonScheduledAmps=0", "non_scheduled_amps", 0),
    ("setResumeTrackGreenEnergyTime=06:30", "resume_green_min", 390),
    ("setResumeTrackGreenEnergyTime=-1:00", "resume_green_min", -1),
    ("setResumeTrackGreenEnergyTime=06:20", "resume_green_min", 380),
])
def test_set_commands_change_and_save(text, field, value):
    home = make_home(Settings(non_scheduled_amps=5, resume_green_min=100))
    rec = Recorder(home)
    assert handle_request(text, home, rec.ctx).text is None
    assert getattr(home.settings, field) == value
    assert rec.saved


@pytest.mark.parametrize("separator", ["\n", " "])
def test_set_scheduled_amps_with_newlines_or_spaces(separator):
    # decisions §4.12: LennyBo's Boost page sent spaces and was silently ignored.
    home = make_home()
    text = separator.join(["setScheduledAmps=16", "startTime=21:00", "endTime=07:00", "days=127"])
    handle_request(text, home, Recorder(home).ctx)
    s = home.settings
    assert (s.scheduled_amps, s.scheduled_start_min, s.scheduled_end_min,
            s.scheduled_days_bitmap) == (16, 1260, 420, 127)


def test_charge_now_and_cancel():
    home = make_home()
    rec = Recorder(home)
    handle_request("chargeNow", home, rec.ctx)
    assert home.settings.charge_now_amps == 40
    assert home.settings.charge_now_until_at_wall == rec.ctx.now_wall_s + 86400
    assert home.site.pool.source == policy.CHARGE_NOW  # recomputed at once for the next heartbeat
    handle_request("chargeNowCancel", home, rec.ctx)
    assert (home.settings.charge_now_amps, home.settings.charge_now_until_at_wall) == (0, 0)
    assert rec.saved == ["chargeNow", "chargeNowCancel"]


@pytest.mark.parametrize("text", [
    "setNonScheduledAmps=1-2",            # the original crashed on int("1-2")
    "setNonScheduledAmps=abc",
    "setNonScheduledAmps=-5",
    "setNonScheduledAmps=99999",
    "setScheduledAmps=16",
    "setScheduledAmps=16\nstartTime=25:00\nendTime=07:00\ndays=127",
    "setScheduledAmps=16\nstartTime=21:00\nendTime=07:00\ndays=300",
    "setResumeTrackGreenEnergyTime=6h30",
    "sendTWCMsg=ABC",                     # odd hex
    "sendTWCMsg=XYZ1",
    "sendTWCMsg=FC19",                    # could permanently disable the TWC
    "sendTWCMsg=FC1A",
    "sendTWCMsg=FBE8",                    # could crash the TWC
    "sendTWCMsg=FBE077770451051F40",      # a heartbeat offering 80 A behind the policy's back
    "setMasterHeartbeatData=0",
    "setDebugLevel=x",
    "carApiEmailPassword=a@b.c\nsecret",
    "beginTest",
    "",
])
def test_bad_requests_have_no_effect(text):
    home = make_home()
    before = repr(home.settings), home.master.override_heartbeat_data
    rec = Recorder(home)
    with pytest.raises(BadRequest):
        handle_request(text, home, rec.ctx)
    assert (repr(home.settings), home.master.override_heartbeat_data) == before
    assert rec.saved == [] and rec.sent == []


def test_send_twc_msg_pads_and_remembers_the_reply():
    home = make_home()
    rec = Recorder(home)
    handle_request("sendTWCMsg=FB1B", home, rec.ctx)  # no slave: 15 bytes (§8.6)
    assert rec.sent == [messages.to_wire(messages.parse_message(
        bytes.fromhex("FB1B") + bytes(13) + bytes([0x1B])))]
    assert handle_request("getLastTWCMsgResponse", home, rec.ctx).text == "None"
    # routine traffic does not count as the answer; the debug reply does
    home.master.on_bytes(messages.to_wire(SlaveLinkready(0x0451, 1, 80.0, 1)), 1000.0)
    reply = DebugReply(0xFD1B, bytes([4, 5, 3]) + bytes(10))
    home.master.on_bytes(messages.to_wire(reply), 1000.1)
    body = reply.to_body()
    expected = (body + bytes([checksum(body)])).hex(" ").upper()  # checksum included
    assert handle_request("getLastTWCMsgResponse", home, rec.ctx).text == expected
    assert expected.startswith("FD 1B 04 05 03") and len(expected.split(" ")) == 16


def test_send_twc_msg_protocol_1_slave_gets_13_bytes():
    home = make_home()
    home.master.on_bytes(messages.to_wire(SlaveLinkready(0x0451, 1, 80.0, 1)), 1000.0)
    rec = Recorder(home)
    handle_request("sendTWCMsg=FB 1A", home, rec.ctx)
    (message,) = FrameDecoder().feed(rec.sent[0])
    assert message == bytes.fromhex("FB1A") + bytes(11) + bytes([0x1A])  # 13 bytes + checksum


def test_set_master_heartbeat_data_and_clear():
    home = make_home()
    rec = Recorder(home)
    handle_request("setMasterHeartbeatData=050258", home, rec.ctx)
    assert home.master.override_heartbeat_data == bytes.fromhex("050258")
    handle_request("setMasterHeartbeatData=", home, rec.ctx)
    assert home.master.override_heartbeat_data is None


def test_ping():
    home = make_home()
    assert handle_request("ping=abc-1", home, Recorder(home).ctx).text == "pong=abc-1"


# ------------------------------------------------------------------ packets

def test_dump_state_packets_and_290_cut():
    home = make_home()
    for i in range(3):
        add_slave(home.master, 0x0100 + i, 80.0, 10.0, 12, 1)
    rec = Recorder(home)
    reply = handle_request("dumpState", home, rec.ctx)
    assert reply.packets and "slave 0102" in reply.text
    request = ipc.Request(1234, 42, "dumpState")
    bodies = reply_bodies(request, reply)
    count = bodies[0][6]
    assert len(bodies[0]) == 7 and count == len(bodies) - 1 == -(-len(reply.text) // 290)
    assert all(struct.unpack("=LH", b[:6]) == (1234, 42) for b in bodies)
    assert all(len(b) - 6 <= 290 for b in bodies[1:])
    assert b"".join(b[6:] for b in bodies[1:]).decode() == reply.text
    # a normal reply is cut at 290 characters
    long = reply_bodies(request, ipc.Reply("x" * 500))
    assert len(long) == 1 and len(long[0]) == 296


@pytest.mark.parametrize("body, message", [
    (b"\x01\x02\x03", "shorter"),
    (struct.pack("=LH", 1, 2) + "getStätus".encode(), "not ASCII"),
])
def test_unpack_rejects_bad_bodies(body, message):
    with pytest.raises(BadRequest, match=message):
        ipc.unpack(body)


# ------------------------------------------------------------ on a real queue

def raw_query(queue, text, timeout_s=3.0, sent_at=None):
    ident = random.randint(1, 65535)
    queue.send(struct.pack("=LH", int(sent_at or time.time()), ident) + text.encode(), type=2)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            body, _ = queue.receive(type=1, block=False)
        except sysv_ipc.BusyError:
            time.sleep(0.002)
            continue
        if struct.unpack("=LH", body[:6])[1] == ident:
            return body[6:].decode()
    return None


def test_stale_commands_are_dropped_fresh_ones_applied(tmp_path, caplog):
    with Rig(tmp_path, [charging_unit()]) as rig:
        queue = rig.daemon.ipc.queue
        old = struct.pack("=LH", int(time.time()) - 61, 0) + b"setNonScheduledAmps=3"
        queue.send(old, type=2)
        assert raw_query(queue, "getStatus").split("`")[4] == "16"
        assert any("older than 60" in r.getMessage() for r in caplog.records)
        queue.send(struct.pack("=LH", int(time.time()), 0) + b"setNonScheduledAmps=7", type=2)
        assert wait_until(lambda: raw_query(queue, "getStatus").split("`")[4] == "7", 5)


def test_garbage_bodies_do_not_jam_the_queue(tmp_path):
    with Rig(tmp_path, [charging_unit()]) as rig:
        queue = rig.daemon.ipc.queue
        for body in (b"", b"\x01\x02", struct.pack("L", int(time.time())),
                     struct.pack("=LH", int(time.time()), 0) + b"\xff\xfe\x00",
                     struct.pack("=LH", int(time.time()), 0) + b"setNonScheduledAmps=1-2",
                     struct.pack("=LH", int(time.time()), 0) + b"sendTWCMsg=ABC"):
            queue.send(body, type=2)
        assert raw_query(queue, "getStatus").split("`")[4] == "16"
        assert rig.thread.is_alive()


def test_command_reaches_the_next_heartbeat(tmp_path):
    unit = charging_unit()
    with Rig(tmp_path, [unit]) as rig:
        assert wait_until(lambda: unit.limit_amps == 16, timeout_s=20)
        assert rig.offer_settled()
        queue = rig.daemon.ipc.queue
        queue.send(struct.pack("=LH", int(time.time()), 0) + b"setNonScheduledAmps=10", type=2)
        sent_at = time.monotonic()
        assert wait_until(lambda: unit.limit_amps == 10, timeout_s=3)
        first = next(t for t, data in unit.commands if t >= sent_at - 0.01
                     and data[:3] == bytes.fromhex("0903E8"))
        earlier = [t for t, _ in unit.commands if sent_at <= t < first]
        assert earlier == []  # not a heartbeat later: the very next one


def test_flooded_queue_never_delays_heartbeats(tmp_path, caplog):
    unit = charging_unit()
    with Rig(tmp_path, [unit]) as rig:
        assert wait_until(lambda: unit.heartbeats_received >= 3, timeout_s=10)
        queue = rig.daemon.ipc.queue
        stop = threading.Event()
        sent = [0]

        def flood():
            body = struct.pack("=LH", int(time.time()), 7) + b"getStatus"
            while not stop.is_set():
                try:  # nobody reads the replies: the queue fills up with them
                    queue.send(body, type=2, block=False)
                    sent[0] += 1
                except sysv_ipc.BusyError:
                    time.sleep(0.0005)

        start = time.monotonic()
        threads = [threading.Thread(target=flood) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            assert wait_until(lambda: time.monotonic() - start > 5 and rig.daemon.ipc.replies_dropped,
                              timeout_s=15)
        finally:
            stop.set()
            for thread in threads:
                thread.join(5)
        beats = [t for t, _ in unit.commands if t >= start + 0.5]
        gaps = [b - a for a, b in zip(beats, beats[1:])]
        assert len(beats) >= 4 and max(gaps) < 1.2, gaps
        assert sent[0] > 1000
        assert any("IPC queue full" in r.getMessage() for r in caplog.records)
        # drain the replies; the daemon still answers
        while True:
            try:
                queue.receive(type=1, block=False)
            except sysv_ipc.BusyError:
                break
        assert wait_until(lambda: raw_query(queue, "getStatus", timeout_s=1) is not None, 10)


def test_charge_now_with_rate_and_duration_is_capped_by_the_wiring():
    home = make_home()
    rec = Recorder(home)
    handle_request("chargeNow=24,3600", home, rec.ctx)
    assert home.settings.charge_now_amps == 24
    assert home.settings.charge_now_until_at_wall == rec.ctx.now_wall_s + 3600
    handle_request("chargeNow=80,60", home, rec.ctx)
    assert home.settings.charge_now_amps == 40
    for bad in ("chargeNow=0,60", "chargeNow=10", "chargeNow=10,-5", "chargeNow=a,b"):
        with pytest.raises(BadRequest):
            handle_request(bad, home, rec.ctx)


def test_status_json_has_numbers():
    import json

    home = make_home()
    home.site.pool = policy.PoolDecision(20.0, policy.NON_SCHEDULED, "non-scheduled amps")
    add_slave(home.master, 0x032E, 32.0, 15.5, 16, 1, protocol=2)
    reply = handle_request("getStatusJson", home, Recorder(home).ctx)
    assert reply.packets
    data = json.loads(reply.text)
    assert data["pool_amps"] == 20.0 and data["non_scheduled_amps"] == 20
    assert data["slaves"][0]["twcid"] == "032E" and data["slaves"][0]["actual_amps"] == 15.5


def test_long_packet_reply_passes_a_full_kernel_queue(tmp_path):
    """Six hours of chart samples (~27 KB) exceed the 16 KiB kernel queue: the sender
    thread feeds them as the reader makes room, without blocking the loop."""
    import json

    from TWCManager.ipc_client import IpcClient

    with Rig(tmp_path, [charging_unit()]) as rig:
        samples = [{"t": 1_800_000_000 + 60 * i, "grid_w": -1234 + i, "solar_w": 5678,
                    "house_w": 2345, "car_w": 4321} for i in range(360)]
        rig.daemon.site.green_service.history.samples.extend(samples)
        text = IpcClient(path=str(rig.ipc_path)).query("getGreenHistory", timeout_s=5,
                                                       packets=True)
        assert len(text) > 16384
        assert json.loads(text) == samples
        assert rig.daemon.ipc.replies_dropped == 0
