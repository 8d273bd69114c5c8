"""MQTT for Home Assistant (issue 13 point 4, optional: `[mqtt] enabled`), on paho-mqtt 2.

Runs in its own threads (paho's network loop, a publisher, timers): the RS-485 loop never waits
for the broker. The state is read from the daemon and commands are applied through it with
the callables given (the daemon's loop does the work). The availability topic carries a last
will ("offline"); on every (re)connection "online", the discovery configs and the state are
published again; when Home Assistant says "online" on its status topic, the configs are
republished after a short random delay (entities would otherwise stay unavailable after an HA
restart). paho reconnects by itself with a backoff of 1 s doubling up to 60 s.
"""
from __future__ import annotations

import json
import logging
import random
import threading
from typing import Callable

import paho.mqtt.client as mqtt

from ..ipc.modes import BOOST, ECO
from .discovery import BadCommand, Topics, discovery_messages, parse_command

log = logging.getLogger("TWCManager.mqtt")

RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 60
DAY_S = 86400


class MqttBridge:
    def __init__(self, host: str, port: int, *, topics: Topics, get_state: Callable[[], dict],
                 apply: Callable[[list[str]], None],
                 set_inverter: Callable[[str, str, str], None] | None,
                 night: Callable[[], tuple[str, ...]], max_amps: int, version: str,
                 interval_s: float = 10.0, username: str = "", password: str = "",
                 client_id: str = "", republish_delay_s: tuple[float, float] = (0.5, 3.0),
                 rng: Callable[[], float] = random.random) -> None:
        self.host, self.port, self.topics = host, port, topics
        self.get_state, self.apply, self.set_inverter = get_state, apply, set_inverter
        # Boost/Eco's night schedule commands ([eco], the tariff's window).
        self.night, self.max_amps, self.version = night, max_amps, version
        self.interval_s, self.republish_delay_s, self._rng = interval_s, republish_delay_s, rng
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"twcmanager-{random.getrandbits(32):08x}")
        self.client.will_set(topics.status, "offline", qos=1, retain=True)
        if username:
            self.client.username_pw_set(username, password or None)
        self.client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self.connections = 0
        self.discoveries = 0
        self.rejected: list[str] = []
        self._stop = threading.Event()
        self._publish_now = threading.Event()
        self._discovered_for: tuple | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._publish_now.set()
        if self._thread:
            self._thread.join(timeout_s)
        if self.connected.is_set():
            self.client.publish(self.topics.status, "offline", qos=1, retain=True).wait_for_publish(
                timeout_s)
        self.client.disconnect()
        self.client.loop_stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.connected.is_set():
                try:
                    self.publish_state()
                except Exception:       # the daemon busy or stopping: next round
                    log.exception("MQTT: could not publish the state")
            self._publish_now.wait(self.interval_s)
            self._publish_now.clear()

    # ------------------------------------------------------------------ publishing

    def publish_state(self, force_discovery: bool = False) -> None:
        state = self.get_state()
        shape = (tuple(c["id"] for c in state.get("chargers", [])),
                 state.get("inverter_state") is not None)
        if force_discovery or shape != self._discovered_for:
            for topic, config in discovery_messages(state, self.topics, self.version,
                                                    self.max_amps):
                self.client.publish(topic, json.dumps(config), qos=1, retain=True)
            self._discovered_for = shape
            self.discoveries += 1
        self.client.publish(self.topics.state, json.dumps(state), qos=0, retain=True)
        for charger in state.get("chargers", []):
            self.client.publish(self.topics.charger(charger["id"]), json.dumps(charger),
                                qos=0, retain=True)

    # ------------------------------------------------------------------ paho callbacks

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker %s:%d refused the connection: %s", self.host, self.port,
                      reason_code)
            return
        self.connections += 1
        log.info("MQTT: connected to %s:%d", self.host, self.port)
        client.publish(self.topics.status, "online", qos=1, retain=True)
        client.subscribe([(self.topics.command("#"), 1), (f"{self.topics.discovery}/status", 1)])
        self._discovered_for = None      # a broker that restarted may have lost them
        self.connected.set()
        self._publish_now.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("MQTT: disconnected from %s:%d (%s); reconnecting", self.host,
                        self.port, reason_code)

    def _on_message(self, client, userdata, message) -> None:
        payload = message.payload.decode("utf-8", "replace")
        if message.topic == f"{self.topics.discovery}/status":
            if payload == "online":
                low, high = self.republish_delay_s
                timer = threading.Timer(low + (high - low) * self._rng(), self._republish)
                timer.daemon = True
                timer.start()
            return
        name = message.topic.rsplit("/", 1)[-1]
        try:
            what, value = parse_command(name, payload, self.max_amps)
            self._apply(what, value)
        except BadCommand as exc:
            self.rejected.append(str(exc))
            log.warning("MQTT: ignored %s: %s", message.topic, exc)
            return
        except Exception as exc:        # the daemon refused or did not answer
            log.error("MQTT: %s %r failed: %s", name, payload[:40], exc)
            return
        self._publish_now.set()         # read back: the new state at once

    def _republish(self) -> None:
        if self.connected.is_set():
            log.info("MQTT: Home Assistant is online again: discovery republished")
            self.publish_state(force_discovery=True)

    def _apply(self, what: str, value) -> None:
        if what in ("output-priority", "charger-priority"):
            if self.set_inverter is None:
                raise BadCommand("no PI30 inverter configured")
            self.set_inverter(what, value, "MQTT")
        elif what in ("boost", "eco") or (what == "mode" and value != "Do not charge"):
            last = BOOST if what == "boost" or value == "Boost" else ECO
            self.apply([*self.night(), last])
        elif what == "mode":
            self.apply([ECO, "setNonScheduledAmps=0"])
        elif what == "charge_now_amps":
            self.apply([ECO] if value == 0 else [f"chargeNow={value},{DAY_S}"])
