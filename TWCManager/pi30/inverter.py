"""What one reads from and asks of a PI30 inverter, over a `Pi30Link`: the status as one
object of figures, and a priority written only when it differs, then read back. Used by the
`pi30` command and by the daemon's poller."""
from __future__ import annotations

from . import codec
from .link import Pi30Link, Refused

SETTINGS = {"output-priority": ("output_priority", codec.output_priority_command,
                                codec.OUTPUT_PRIORITIES),
            "charger-priority": ("charger_priority", codec.charger_priority_command,
                                 codec.CHARGER_PRIORITIES)}


def read_status(link: Pi30Link) -> dict:
    """One JSON object: the figures of QMOD, QPIGS, QPIRI and QPIWS (null when not reported)."""
    mode = codec.parse_qmod(link.exchange("QMOD"))
    gs = codec.parse_qpigs(link.exchange("QPIGS"))
    ratings = codec.parse_qpiri(link.exchange("QPIRI"))
    try:
        warnings: list[str] | None = codec.parse_qpiws(link.exchange("QPIWS"))
    except Refused:
        warnings = None   # a few firmwares do not know QPIWS
    return {
        "mode": mode, "mode_name": codec.MODES[mode],
        "grid_v": gs.grid_v, "grid_hz": gs.grid_hz,
        "ac_out_v": gs.ac_out_v, "ac_out_w": gs.ac_out_w, "ac_out_va": gs.ac_out_va,
        "load_pct": gs.load_pct,
        "battery_v": gs.battery_v, "battery_soc_pct": gs.battery_soc_pct,
        "battery_charge_a": gs.battery_charge_a, "battery_discharge_a": gs.battery_discharge_a,
        "battery_w": round(gs.battery_w, 1),
        "pv_v": gs.pv_v, "pv_w": gs.pv_w, "heatsink_c": gs.heatsink_c,
        # SBU hands the load back to the grid at or below this voltage.
        "battery_recharge_v": ratings.battery_recharge_v,
        "output_priority": ratings.output_priority,
        "charger_priority": ratings.charger_priority,
        "warnings": warnings,
    }


def describe(status: dict) -> str:
    """The status for a person."""
    battery = status["battery_w"]
    flow = f"charging {battery:.0f} W" if battery > 0 else (
        f"discharging {-battery:.0f} W" if battery < 0 else "idle")
    pv = f"{status['pv_w']:.0f} W" if status["pv_w"] is not None else "? W"
    warnings = status["warnings"]
    return "\n".join([
        f"Mode:      {status['mode']} ({status['mode_name']})",
        f"Battery:   {status['battery_soc_pct']:.0f} %, {status['battery_v']:.2f} V, {flow}",
        f"PV:        {pv} at {status['pv_v']:.1f} V",
        f"Load:      {status['ac_out_w']:.0f} W ({status['load_pct']:.0f} %)",
        f"Grid:      {status['grid_v']:.1f} V, {status['grid_hz']:.1f} Hz",
        f"Priority:  output {status['output_priority']}, charger {status['charger_priority']}",
        "Warnings:  " + ("unknown" if warnings is None else ", ".join(warnings) or "none"),
    ])


def set_priority(link: Pi30Link, what: str, value: str) -> str:
    """Write a priority if it differs, then read it back; returns what was done."""
    attribute, command_for, _choices = SETTINGS[what]
    current = getattr(codec.parse_qpiri(link.exchange("QPIRI")), attribute)
    if current == value:
        return f"{what} is already {value}: nothing sent"
    command = command_for(value)
    if link.exchange(command) != "ACK":
        raise Refused(f"Inverter refused {command}")
    now = getattr(codec.parse_qpiri(link.exchange("QPIRI")), attribute)
    if now != value:
        raise Refused(f"Inverter refused {command}: it acknowledged, but QPIRI still says {now}")
    return f"{what} set to {value} (was {current}; read back)"
