"""MQTT for Home Assistant against a real `mosquitto` on 127.0.0.1 (Debian's package; ./test.sh
installs it when root, else these are skipped with the reason): discovery as homeassistant.md §2
(one device per charger and one for the inverter, availability with a last will), commands
accepted only from the listed values and read back, discovery republished when Home Assistant
says "online", reconnection after the broker restarts, and the RS-485 loop never waiting for a
broker that is down."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading

import pytest

from TWCManager.mqtt.discovery import BadCommand, Topics, discovery_messages, parse_command

from .util import wait_until

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                          if shutil.which("/usr/sbin/mosquitto") else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Broker:
    def __init__(self, tmp_path, port: int) -> None:
        self.port = port
        self.conf = tmp_path / "mosquitto.conf"
        self.conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                             "persistence false\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(self._listening, timeout_s=10), "mosquitto did not start"
        return self

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def broker(tmp_path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (sudo apt-get install mosquitto; ./test.sh "
                    "installs it when root)")
    broker = Broker(tmp_path, free_port()).start()
    yield broker
    broker.stop()


class Listener:
    """A test client recording every message on the topics it subscribes to."""

    def __init__(self, port: int, *topics: str) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-listener")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload.decode(), message.retain))

    def last(self, topic: str) -> str | None:
        with self._lock:
            found = [payload for t, payload, _ in self.messages if t == topic]
        return found[-1] if found else None

    def count(self, prefix: str) -> int:
        with self._lock:
            return sum(1 for t, _, _ in self.messages if t.startswith(prefix))

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# ------------------------------------------------------------------ pure

STATE = {"chargers": [{"id": "032E", "amps_drawn": 15.7}], "inverter_state": "ok",
         "mode": "green"}


def test_discovery_groups_entities_by_device_with_availability():
    messages = dict(discovery_messages(STATE, Topics(), "2", 32))
    charger = messages["homeassistant/sensor/twcmanager_032e/amps_drawn/config"]
    assert charger["device"]["identifiers"] == ["twcmanager_032e"]
    assert charger["device"]["via_device"] == "twcmanager"
    assert charger["state_topic"] == "twcmanager/charger/032E/state"
    assert charger["unit_of_measurement"] == "A" and charger["device_class"] == "current"
    energy = messages["homeassistant/sensor/twcmanager_032e/energy/config"]
    assert energy["state_class"] == "total_increasing" and energy["unit_of_measurement"] == "kWh"
    select = messages["homeassistant/select/twcmanager_pi30/output_priority/config"]
    assert select["options"] == ["utility", "solar", "sbu"]
    assert select["command_topic"] == "twcmanager/set/output_priority"
    number = messages["homeassistant/number/twcmanager/charge_now_amps/config"]
    assert (number["min"], number["max"], number["step"]) == (0, 32, 1)
    assert "homeassistant/button/twcmanager/boost/config" in messages
    assert all(m["availability_topic"] == "twcmanager/status" for m in messages.values())
    ids = [m["unique_id"] for m in messages.values()]
    assert len(ids) == len(set(ids))
    # No inverter: no inverter device.
    assert not any("pi30" in t for t, _ in discovery_messages(
        {**STATE, "inverter_state": None}, Topics(), "2", 32))


@pytest.mark.parametrize("name, payload, expected", [
    ("mode", "Boost", ("mode", "Boost")), ("output_priority", "sbu", ("output-priority", "sbu")),
    ("charger_priority", "solar-only", ("charger-priority", "solar-only")),
    ("charge_now_amps", "16", ("charge_now_amps", 16)),
    ("charge_now_amps", "0.0", ("charge_now_amps", 0)), ("boost", "PRESS", ("boost", None)),
])
def test_commands_take_the_listed_values(name, payload, expected):
    assert parse_command(name, payload, 32) == expected


@pytest.mark.parametrize("name, payload", [
    ("mode", "boost"), ("output_priority", "battery"), ("charge_now_amps", "33"),
    ("charge_now_amps", "6.5"), ("charge_now_amps", "nan"), ("boost", "1"), ("reboot", "PRESS"),
])
def test_anything_else_is_refused(name, payload):
    with pytest.raises(BadCommand):
        parse_command(name, payload, 32)


# ------------------------------------------------------------------ live

def test_home_assistant_discovery_commands_and_restarts(tmp_path, broker, pi30_sim):
    from .test_daemon_pty import Rig, charging_unit

    sim, port = pi30_sim
    listener = Listener(broker.port, "homeassistant/#", "twcmanager/#")
    try:
        with Rig(tmp_path, [charging_unit()], **{
                "mqtt.enabled": True, "mqtt.port": broker.port, "mqtt.interval_s": 0.5,
                "pi30.port": port, "pi30.interval_s": 0.5, "pi30.timeout_s": 1.0,
                "twc.wiring_max_amps_all_twcs": 32, "twc.wiring_max_amps_per_twc": 32}) as rig:
            bridge = rig.daemon.mqtt
            assert wait_until(lambda: listener.last("twcmanager/status") == "online",
                              timeout_s=10)

            def state() -> dict:
                return json.loads(listener.last("twcmanager/state") or "{}")
            assert wait_until(lambda: state().get("battery_soc_pct") == 66
                              and state().get("chargers"), timeout_s=15), state()
            # Discovery goes at QoS 1 and the state at QoS 0: either may arrive first.
            charger_config = "homeassistant/sensor/twcmanager_032e/amps_drawn/config"
            assert wait_until(lambda: listener.last(charger_config), timeout_s=10)
            assert wait_until(lambda: listener.last(
                "homeassistant/select/twcmanager_pi30/output_priority/config"), timeout_s=10)
            config = json.loads(listener.last(charger_config))
            assert config["device"]["name"] == "Wall Connector 032E"
            assert wait_until(lambda: listener.last("twcmanager/charger/032E/state"),
                              timeout_s=10)

            # A command from the listed values is applied and read back.
            listener.publish("twcmanager/set/output_priority", "utility")
            assert wait_until(lambda: sim.model.output_priority == 0, timeout_s=10)
            assert wait_until(lambda: state().get("inverter_output_priority") == "utility",
                              timeout_s=10), state()
            # Anything else is ignored, and said.
            writes = [r for r in sim.requests if r.startswith("POP")]
            listener.publish("twcmanager/set/output_priority", "battery")
            assert wait_until(lambda: bridge.rejected, timeout_s=5)
            assert [r for r in sim.requests if r.startswith("POP")] == writes
            listener.publish("twcmanager/set/boost", "PRESS")
            assert wait_until(lambda: rig.daemon.query(
                lambda home, now: home.settings.charge_now_amps) == 32.0, timeout_s=10)
            assert wait_until(lambda: state().get("mode") == "charge_now", timeout_s=10)
            listener.publish("twcmanager/set/charge_now_amps", "0")
            assert wait_until(lambda: rig.daemon.query(
                lambda home, now: home.settings.charge_now_amps) == 0.0, timeout_s=10)

            # Home Assistant restarts: it says "online", the configs come again.
            before = bridge.discoveries
            listener.publish("homeassistant/status", "online")
            assert wait_until(lambda: bridge.discoveries > before, timeout_s=10)

            # The broker restarts: the bridge reconnects, says "online" and republishes.
            broker.stop()
            listener.close()
            heard = rig.units[0].heartbeats_received
            assert wait_until(lambda: not bridge.connected.is_set(), timeout_s=10)
            # Meanwhile the RS-485 loop goes on.
            assert wait_until(lambda: rig.units[0].heartbeats_received > heard + 3,
                              timeout_s=10)
            broker.start()
            listener = Listener(broker.port, "homeassistant/#", "twcmanager/#")
            assert wait_until(lambda: bridge.connections >= 2, timeout_s=30)
            assert wait_until(lambda: listener.last("twcmanager/status") == "online",
                              timeout_s=10)
            assert wait_until(lambda: listener.last(
                "homeassistant/select/twcmanager/charge_mode/config"), timeout_s=10)
        # The daemon stops: "offline", retained, for whoever subscribes next.
        assert wait_until(lambda: listener.last("twcmanager/status") == "offline", timeout_s=10)
    finally:
        listener.close()


def test_the_last_will_says_offline_when_the_connection_dies(tmp_path, broker):
    from TWCManager.mqtt.bridge import MqttBridge

    listener = Listener(broker.port, "twcmanager/status")
    bridge = MqttBridge("127.0.0.1", broker.port, topics=Topics(),
                        get_state=lambda: {"chargers": [], "inverter_state": None},
                        apply=lambda texts: None, set_inverter=None,
                        night=lambda: (), max_amps=32, version="2",
                        interval_s=0.5)
    bridge.start()
    try:
        assert wait_until(lambda: listener.last("twcmanager/status") == "online", timeout_s=10)
        bridge.client.socket().close()          # the network goes, no DISCONNECT sent
        assert wait_until(lambda: listener.last("twcmanager/status") == "offline",
                          timeout_s=60)
        assert wait_until(lambda: listener.last("twcmanager/status") == "online",
                          timeout_s=30)         # and paho reconnects by itself
    finally:
        bridge.stop()
        listener.close()
