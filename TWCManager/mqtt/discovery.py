"""Home Assistant's MQTT discovery for TWCManager (homeassistant.md §2), pure: the retained
config messages for one device for the site, one per Wall Connector and one for the PI30
inverter, from the /api/v1/state object; and the commands, accepted only from the listed values.

Topics (`prefix` = `[mqtt] prefix`, default "twcmanager"):
  {prefix}/status                 "online" / "offline" (the client's last will), retained
  {prefix}/state                  the /api/v1/state JSON, retained
  {prefix}/charger/{id}/state     one charger's JSON
  {prefix}/set/{command}          commands: mode, output_priority, charger_priority,
                                  charge_now_amps, boost, eco
  {discovery}/{component}/{node}/{object}/config   discovery, retained
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MODES = ("Boost", "Eco (sun)", "Do not charge")
OUTPUT_PRIORITIES = ("utility", "solar", "sbu")
CHARGER_PRIORITIES = ("utility", "solar", "solar-utility", "solar-only")

# (object id, name, state key, unit, device class, state class)
SITE_SENSORS = (
    ("solar_power", "Solar power", "solar_w", "W", "power", "measurement"),
    ("grid_power", "Grid power", "grid_w", "W", "power", "measurement"),
    ("house_power", "House power", "house_w", "W", "power", "measurement"),
    ("car_power", "Car power", "car_w", "W", "power", "measurement"),
    ("amps_available", "Amps available", "pool_amps", "A", "current", "measurement"),
    ("car_energy", "Car energy", "car_lifetime_kwh", "kWh", "energy", "total_increasing"),
    ("solar_energy", "Solar energy", "energy_solar_kwh", "kWh", "energy", "total_increasing"),
    ("import_energy", "Grid import", "energy_import_kwh", "kWh", "energy", "total_increasing"),
    ("export_energy", "Grid export", "energy_export_kwh", "kWh", "energy", "total_increasing"),
    ("car_sun_energy", "Car from the sun", "energy_car_sun_kwh", "kWh", "energy",
     "total_increasing"),
    ("car_grid_energy", "Car from the grid", "energy_car_grid_kwh", "kWh", "energy",
     "total_increasing"),
    ("price", "Price now", "price_eur_kwh", "EUR/kWh", None, "measurement"),
    ("mode", "Mode", "mode", None, None, None),
    ("reason", "Reason", "reason", None, None, None),
    ("tempo_today", "Tempo today", "tempo_today", None, None, None),
    ("tempo_tomorrow", "Tempo tomorrow", "tempo_tomorrow", None, None, None),
)
CHARGER_SENSORS = (
    ("amps_drawn", "Amps drawn", "amps_drawn", "A", "current", "measurement"),
    ("amps_offered", "Amps offered", "amps_offered", "A", "current", "measurement"),
    ("energy", "Energy", "lifetime_kwh", "kWh", "energy", "total_increasing"),
    ("session_energy", "Session energy", "session_kwh", "kWh", "energy", "total_increasing"),
    ("state", "State", "state_name", None, None, None),
)
INVERTER_SENSORS = (
    ("battery", "Battery", "battery_soc_pct", "%", "battery", "measurement"),
    ("battery_voltage", "Battery voltage", "battery_v", "V", "voltage", "measurement"),
    ("battery_power", "Battery power", "battery_w", "W", "power", "measurement"),
    ("pv_power", "PV power", "inverter_pv_w", "W", "power", "measurement"),
    ("load", "Load", "inverter_load_w", "W", "power", "measurement"),
    ("grid_voltage", "Grid voltage", "inverter_grid_v", "V", "voltage", "measurement"),
    ("inverter_mode", "Mode", "inverter_mode", None, None, None),
    ("battery_target", "Battery target", "battery_target_soc_pct", "%", None, "measurement"),
)


@dataclass(frozen=True)
class Topics:
    prefix: str = "twcmanager"
    discovery: str = "homeassistant"

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def state(self) -> str:
        return f"{self.prefix}/state"

    def charger(self, twcid: str) -> str:
        return f"{self.prefix}/charger/{twcid}/state"

    def command(self, name: str) -> str:
        return f"{self.prefix}/set/{name}"

    def config(self, component: str, node: str, obj: str) -> str:
        return f"{self.discovery}/{component}/{node}/{obj}/config"


def _device(identifier: str, name: str, model: str, version: str) -> dict:
    return {"identifiers": [identifier], "name": name, "manufacturer": "TWCManager (Python)",
            "model": model, "sw_version": version}


def _sensor(topics: Topics, device: dict, node: str, spec: tuple, state_topic: str) -> tuple:
    obj, name, key, unit, device_class, state_class = spec
    config = {"name": name, "unique_id": f"{node}_{obj}", "state_topic": state_topic,
              "value_template": "{{ value_json." + key + " }}",
              "availability_topic": topics.status, "device": device}
    for field, value in (("unit_of_measurement", unit), ("device_class", device_class),
                         ("state_class", state_class)):
        if value:
            config[field] = value
    return topics.config("sensor", node, obj), config


def discovery_messages(state: dict, topics: Topics, version: str,
                       max_amps: int) -> list[tuple[str, dict]]:
    """Every retained config message for this state's devices."""
    site_node = topics.prefix
    site = _device(site_node, "TWCManager", "Tesla Wall Connector Gen2 master", version)
    out = [_sensor(topics, site, site_node, spec, topics.state) for spec in SITE_SENSORS]
    common = {"availability_topic": topics.status, "device": site}
    out.append((topics.config("select", site_node, "charge_mode"), {
        "name": "Charge mode", "unique_id": f"{site_node}_charge_mode",
        "command_topic": topics.command("mode"), "options": list(MODES),
        "state_topic": topics.state, "value_template": _MODE_TEMPLATE, **common}))
    out.append((topics.config("number", site_node, "charge_now_amps"), {
        "name": "Charge now amps", "unique_id": f"{site_node}_charge_now_amps",
        "command_topic": topics.command("charge_now_amps"), "min": 0, "max": max_amps,
        "step": 1, "unit_of_measurement": "A", "mode": "box",
        "state_topic": topics.state, "value_template": "{{ value_json.charge_now_amps }}",
        **common}))
    for name in ("boost", "eco"):
        out.append((topics.config("button", site_node, name), {
            "name": name.capitalize(), "unique_id": f"{site_node}_{name}",
            "command_topic": topics.command(name), "payload_press": "PRESS", **common}))
    for charger in state.get("chargers", []):
        node = f"{site_node}_{charger['id'].lower()}"
        device = _device(node, f"Wall Connector {charger['id']}", "Wall Connector Gen2",
                         version)
        device["via_device"] = site_node
        topic = topics.charger(charger["id"])
        out += [_sensor(topics, device, node, spec, topic) for spec in CHARGER_SENSORS]
        out.append((topics.config("binary_sensor", node, "charging"), {
            "name": "Charging", "unique_id": f"{node}_charging", "state_topic": topic,
            "value_template": "{{ 'ON' if value_json.amps_drawn >= 1 else 'OFF' }}",
            "device_class": "battery_charging", "availability_topic": topics.status,
            "device": device}))
    if state.get("inverter_state") is not None:
        node = f"{site_node}_pi30"
        device = _device(node, "PI30 inverter", "MPP-Solar / Voltronic (PI30)", version)
        out += [_sensor(topics, device, node, spec, topics.state) for spec in INVERTER_SENSORS]
        for obj, name, key, options in (
                ("output_priority", "Output priority", "inverter_output_priority",
                 OUTPUT_PRIORITIES),
                ("charger_priority", "Charger priority", "inverter_charger_priority",
                 CHARGER_PRIORITIES)):
            out.append((topics.config("select", node, obj), {
                "name": name, "unique_id": f"{node}_{obj}", "command_topic": topics.command(obj),
                "options": list(options), "state_topic": topics.state,
                "value_template": "{{ value_json." + key + " }}",
                "availability_topic": topics.status, "device": device}))
    return out


_MODE_TEMPLATE = ("{% if value_json.mode == 'charge_now' %}Boost"
                  "{% elif value_json.non_scheduled_amps == 0 %}Do not charge"
                  "{% else %}Eco (sun){% endif %}")


class BadCommand(ValueError):
    """A command payload outside the listed values: ignored, and logged."""


def parse_command(name: str, payload: str, max_amps: int) -> tuple[str, object]:
    """(what, value) for a command topic's payload; BadCommand if not one of its values."""
    text = payload.strip()
    if name == "mode" and text in MODES:
        return "mode", text
    if name == "output_priority" and text in OUTPUT_PRIORITIES:
        return "output-priority", text
    if name == "charger_priority" and text in CHARGER_PRIORITIES:
        return "charger-priority", text
    if name == "charge_now_amps":
        try:
            amps = float(text)
        except ValueError:
            raise BadCommand(f"charge_now_amps {text[:20]!r}: expected 0..{max_amps}") from None
        if math.isfinite(amps) and amps == int(amps) and 0 <= amps <= max_amps:
            return "charge_now_amps", int(amps)
        raise BadCommand(f"charge_now_amps {text[:20]!r}: expected a whole 0..{max_amps}")
    if name in ("boost", "eco") and text == "PRESS":
        return name, None
    raise BadCommand(f"{name} {text[:40]!r}: not one of its values")
