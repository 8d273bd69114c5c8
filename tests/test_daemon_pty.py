"""End to end on a real pseudo-terminal: the daemon (pyserial, reader thread, event
loop) against the simulated TWC. Holds are shortened by injection; protocol timing
(linkready spacing, one heartbeat a second) is real time."""
from __future__ import annotations

import os
import threading
import time


from TWCManager.core import policy
from TWCManager.config import load_config
from TWCManager.daemon import Daemon
from TWCManager.twc.messages import MasterHeartbeat, MasterLinkready1, MasterLinkready2
from TWCManager.core.settings import Settings
from TWCManager.settings_file import load_settings, save_settings
from TWCManager.sim import Car, SimBus, SimulatedTWC, open_pty

from .util import free_ipc_dir, remove_queue_for, wait_until

FAST = policy.Holds(start_stop_s=2, lowering_s=1, spike_s=1, stuck_s=2, idle_give_up_s=5)


class Rig:
    def __init__(self, tmp_path, units, settings=None, holds=FAST, **overrides):
        self.link = str(tmp_path / "ttyTWC")
        self.settings_file = tmp_path / "settings.txt"
        save_settings(self.settings_file, settings or Settings(non_scheduled_amps=16))
        self.bus = SimBus(open_pty(self.link), units)
        self.units = units
        self.ipc_path = free_ipc_dir(tmp_path)
        cfg = load_config(None, {"twc.serial_port": self.link, "settings.file": str(self.settings_file),
                                 "ipc.path": str(self.ipc_path), "twc.reopen_interval_s": 0.5,
                                 **overrides})
        self.holds = holds
        self.daemon = Daemon(cfg, holds=holds)
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)

    def __enter__(self):
        self.bus.start()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.daemon.stop()
        self.thread.join(5)
        self.bus.close()
        remove_queue_for(self.ipc_path)
        assert not self.thread.is_alive(), "daemon did not stop"

    def master_frames(self, kind=None):
        return [(t, m) for t, d, m in self.bus.log.snapshot()
                if d == "rx" and (kind is None or isinstance(m, kind))]

    def offer_settled(self, timeout_s: float = 5.0) -> bool:
        """Wait until the first unit's offer is past the (shortened) lowering hold, so a
        new, lower value is not held back."""
        return wait_until(lambda: self.daemon.query(
            lambda home, now: now - home.master.slaves[0].offer_changed_at > self.holds.lowering_s + 0.5),
            timeout_s)

    def slaves(self):
        return self.daemon.query(lambda home, now: [(s.twcid, s.offered_amps, s.state)
                                                    for s in home.master.slaves])


def charging_unit(twcid=0x032E, protocol=2, max_amps=32.0, mode="charging"):
    return SimulatedTWC(twcid, 0x01, protocol=protocol, max_amps=max_amps,
                        car=Car(mode=mode, car_max_amps=max_amps))


def test_startup_burst_and_heartbeats_on_the_wire(tmp_path):
    with Rig(tmp_path, [charging_unit()]) as rig:
        assert rig.bus.wait_for(lambda log: sum(isinstance(m, MasterHeartbeat) and d == "rx"
                                                for _, d, m in log) >= 6, timeout_s=15)
        frames = rig.master_frames()
        kinds = [type(m) for _, m in frames if isinstance(m, (MasterLinkready1, MasterLinkready2))]
        assert kinds == [MasterLinkready1] * 5 + [MasterLinkready2] * 5
        beats = [t for t, m in rig.master_frames(MasterHeartbeat)]
        gaps = [b - a for a, b in zip(beats[2:], beats[3:])]
        # one a second (the first ones answer linkreadies at once)
        assert gaps and all(0.9 <= g <= 1.15 for g in gaps), gaps


def test_car_charges_at_the_offer(tmp_path):
    unit = charging_unit()
    with Rig(tmp_path, [unit]) as rig:
        assert wait_until(lambda: unit.actual_amps() > 15, timeout_s=20)
        assert unit.limit_amps == 16
        assert rig.slaves() == [(0x032E, 16, 0x01)]


def test_adapter_vanishes_and_comes_back(tmp_path):
    unit = charging_unit()
    with Rig(tmp_path, [unit]) as rig:
        assert wait_until(lambda: rig.daemon.link.up and rig.slaves(), timeout_s=10)
        rig.bus.close_line()
        assert wait_until(lambda: not rig.daemon.link.up, timeout_s=5)
        status = rig.daemon.link_status()
        assert status["down_since"] is not None and status["error"]
        # the loop keeps running while the link is down: it still answers queries
        assert rig.daemon.query(lambda home, now: home.site.pool.amps) == 16
        time.sleep(0.6)  # stay away long enough for at least one failed reopen
        rig.bus.reopen_line()
        assert wait_until(lambda: rig.daemon.link.up, timeout_s=5)
        before = unit.heartbeats_received
        assert wait_until(lambda: unit.heartbeats_received >= before + 3, timeout_s=10)
        assert rig.daemon.link_status()["opens"] >= 2


def test_serial_garbage_is_counted_and_the_loop_goes_on(tmp_path):
    unit = charging_unit()
    with Rig(tmp_path, [unit]) as rig:
        assert wait_until(lambda: unit.heartbeats_received >= 2, timeout_s=10)
        noise = bytes(range(256)) * 4 + b"\xC0\xDB\x01\xC0" + os.urandom(500)
        os.write(rig.bus.pty.master_fd, noise)
        before = unit.heartbeats_received
        assert wait_until(lambda: unit.heartbeats_received >= before + 3, timeout_s=10)
        stats = rig.daemon.query(lambda home, now: home.master.decoder.stats)
        assert stats.garbage_bytes + stats.dropped_bytes > 500
        assert rig.slaves()[0][0] == 0x032E


def test_settings_change_reaches_the_next_heartbeat(tmp_path):
    unit = charging_unit()
    with Rig(tmp_path, [unit]) as rig:
        assert wait_until(lambda: unit.limit_amps == 16, timeout_s=20)
        assert rig.offer_settled()

        def lower(home, now):
            home.settings.non_scheduled_amps = 10
            home.master.settings_changed(now)

        before = len(unit.commands)
        rig.daemon.call(lower)
        assert wait_until(lambda: len(unit.commands) > before, timeout_s=3)
        assert unit.commands[before][1][:3] == bytes.fromhex("0903E8")  # the very next one


def test_charge_now_expiry_is_saved_with_no_slave(tmp_path):
    until = time.time() + 1.5
    settings = Settings(non_scheduled_amps=8, charge_now_amps=16, charge_now_until_at_wall=until)
    with Rig(tmp_path, [], settings=settings) as rig:
        assert wait_until(lambda: load_settings(rig.settings_file)[0].charge_now_amps == 0,
                          timeout_s=6)
        assert rig.daemon.query(lambda home, now: home.site.pool.source) == policy.NON_SCHEDULED


def test_loop_sleeps_on_io(tmp_path):
    """An idle daemon thread must not poll: its CPU time over 2 s stays tiny
    (a 25 ms polling loop like the original's would use far more)."""
    with Rig(tmp_path, [charging_unit(mode="unplugged")]) as rig:
        assert wait_until(lambda: rig.slaves(), timeout_s=10)
        tid = rig.thread.native_id
        reader = next(t for t in threading.enumerate() if t.name == "rs485-reader").native_id

        def cpu_s(native_id):
            with open(f"/proc/self/task/{native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        window_s = 2.0  # a measurement window, not a wait for a condition
        before = cpu_s(tid) + cpu_s(reader)
        time.sleep(window_s)
        used = cpu_s(tid) + cpu_s(reader) - before
        assert used < 0.2, f"daemon threads used {used:.2f} CPU-s in 2 s"


def test_pyserial_url_socket(tmp_path):
    """The adapter can be a pyserial URL (e.g. an RS-485-to-TCP bridge): socket://."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(10)
    port = server.getsockname()[1]
    unit = charging_unit()
    ipc_dir = free_ipc_dir(tmp_path)
    cfg = load_config(None, {"twc.serial_port": f"socket://127.0.0.1:{port}",
                             "settings.file": str(tmp_path / "s.txt"),
                             "ipc.path": str(ipc_dir)})
    daemon = Daemon(cfg, holds=FAST)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    conn = None
    try:
        conn, _ = server.accept()
        with SimBus(os.dup(conn.fileno()), [unit]):
            assert wait_until(lambda: unit.heartbeats_received >= 3, timeout_s=10)
    finally:
        daemon.stop()
        thread.join(5)
        if conn:
            conn.close()
        server.close()
        remove_queue_for(ipc_dir)
    assert not thread.is_alive()
