"""getStatusJson for a person (`twcmanager-ctl status`), pure: one line per thing, figures
with their units, "unknown" or "stale" rather than 0."""
from __future__ import annotations

from datetime import datetime

from ..twc.messages import STATE_NAMES


def _kw(watts) -> str:
    return "?" if watts is None else (f"{watts / 1000:.2f} kW" if abs(watts) >= 1000
                                      else f"{watts:.0f} W")


def _clock(unix) -> str:
    return "never" if not unix else datetime.fromtimestamp(unix).strftime("%H:%M:%S")


def describe_status(status: dict) -> str:
    lines = [f"Mode: {status['pool_source']} — {status['pool_reason']} "
             f"({status['pool_amps']:.2f} A available of {status['wiring_max_amps_all_twcs']:g} A "
             "wiring)"]
    if status.get("charge_now_amps"):
        lines.append(f"Charge now: {status['charge_now_amps']:g} A until "
                     f"{_clock(status['charge_now_until'])}")
    for unit in status.get("slaves", []):
        volts = "/".join(str(v) for v in unit["volts"]) + " V" if unit.get("volts") else "? V"
        session = unit.get("session_kwh")
        lines.append(
            f"Charger {unit['twcid']}: {STATE_NAMES.get(unit['state'], 'unknown')}, "
            f"{unit['actual_amps']:.2f} A drawn of {unit['offered_amps']} A offered, {volts}, "
            f"{unit['kwh'] if unit.get('kwh') is not None else '?'} kWh"
            + (f" (this session {session:.2f} kWh)" if session is not None else ""))
    if not status.get("slaves"):
        lines.append("Chargers: none on the RS-485 bus")
    green = status.get("green") or {}
    if green:
        grid = green.get("grid_w")
        flow = "?" if grid is None else (f"export {_kw(grid)}" if grid >= 0
                                         else f"import {_kw(-grid)}")
        state = green.get("state", "?")
        lines.append(f"Sun: solar {_kw(green.get('solar_w'))}, house {_kw(green.get('house_w'))}"
                     f", car {_kw(green.get('car_w'))}, grid {flow} (read "
                     f"{_clock(green.get('last_reading_at'))}, {state})"
                     if state != "stale" else
                     f"Sun: no valid reading since {_clock(green.get('last_reading_at'))} "
                     f"({green.get('last_error') or 'stale'})")
    tariff = status.get("tariff")
    if tariff:
        def day(d: dict) -> str:
            return (f"{d['colour']} ({d['source']})" if d["colour"] else
                    f"unknown ({d['note']})")
        lines.append(f"Tempo: today {day(tariff['today'])}, tomorrow {day(tariff['tomorrow'])};"
                     f" {tariff['period']} at {tariff['price_eur_kwh']:.4f} €/kWh")
    inverter = status.get("inverter")
    if inverter:
        if inverter.get("state") == "stale" or "battery_soc_pct" not in inverter:
            lines.append(f"Inverter: no answer since {_clock(inverter.get('last_update_at'))} "
                         f"({inverter.get('last_error') or 'stale'})")
        else:
            battery = inverter.get("battery_w") or 0
            flow = (f"charging {battery:.0f} W" if battery > 0 else
                    f"discharging {-battery:.0f} W" if battery < 0 else "idle")
            lines.append(
                f"Inverter: battery {inverter['battery_soc_pct']:.0f} %, "
                f"{inverter['battery_v']:.2f} V, {flow}; PV {_kw(inverter.get('pv_w'))}, "
                f"load {_kw(inverter.get('ac_out_w'))}; mode {inverter['mode']}; output "
                f"{inverter['output_priority']}, charger {inverter['charger_priority']}")
    battery_plan = (status.get("plan") or {}).get("battery")
    if battery_plan:
        lines.append(f"Plan: output {battery_plan['output_priority']} "
                     f"({battery_plan['output_reason']}); battery {battery_plan['target_soc_pct']:.0f} % "
                     f"by the {battery_plan['next_peak_day']} peak")
    goal = status.get("charge_goal")
    if goal:
        windows = ", ".join(f"{w['start'][11:16]}–{w['end'][11:16]}"
                            + (f" at {w['price_eur_kwh']:.4f} €/kWh"
                               if w["price_eur_kwh"] is not None else "")
                            for w in goal["grid_windows"]) or "none needed"
        lines.append(f"Charge goal: {goal['kwh']:g} kWh by {_clock(goal['by'])[:5]}; "
                     f"{goal['done_kwh']:.1f} done; from the grid: {windows}")
    link = status.get("link") or {}
    if link and not link.get("up"):
        lines.append(f"RS-485: down ({link.get('error') or 'not open'})")
    return "\n".join(lines)
