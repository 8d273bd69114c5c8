"""MQTT for Home Assistant (optional): discovery.py (the configs and commands, pure) and
bridge.py (paho-mqtt 2, its own threads)."""
from __future__ import annotations


def mqtt_from(cfg, daemon):
    """The bridge `[mqtt]` describes, wired to the daemon, or None when disabled."""
    if not cfg.mqtt.enabled:
        return None
    from ..config import read_secret
    from ..ipc import commands
    from ..ipc.modes import night_commands, night_schedule
    from ..ipc.state_v1 import api_state
    from ..ipc.status import snapshot
    from .bridge import MqttBridge
    from .discovery import Topics

    m = cfg.mqtt

    def get_state() -> dict:
        return api_state(daemon.query(lambda home, now: snapshot(home, daemon.context(now))))

    def apply(texts: list[str]) -> None:
        daemon.query(lambda home, now: [commands.handle_request(text, home, daemon.context(now))
                                        for text in texts])

    def night() -> tuple[str, ...]:
        return night_commands(night_schedule(cfg.eco, daemon.tempo.status()
                                             if daemon.tempo else None))

    password = read_secret(m.password_file, "mqtt.password_file") if m.password_file else ""
    return MqttBridge(m.host, m.port, topics=Topics(m.prefix, m.discovery_prefix),
                      get_state=get_state, apply=apply,
                      set_inverter=daemon.inverter.request if daemon.inverter else None,
                      night=night,
                      max_amps=int(cfg.twc.wiring_max_amps_all_twcs), version="2",
                      interval_s=m.interval_s, username=m.username, password=password,
                      client_id=m.client_id)
