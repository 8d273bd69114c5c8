"""`GET /api/v1/state` (decisions.md §6.1): the daemon's getStatusJson as one flat object for
Home Assistant and scripts. Pure: a function of that JSON, so a test needs no daemon.

Numbers are numbers, units are in the key names, and a figure is `null` when it is unknown or
stale: Home Assistant then shows "unknown", never a stale value as if it were current.
"""
from __future__ import annotations

from TWCManager.twc.messages import STATE_NAMES

STALE = "stale"

# The inverter's figures as /api/v1/state names them (left: getStatusJson's "inverter").
INVERTER_FIGURES = {
    "battery_soc_pct": "battery_soc_pct",
    "battery_v": "battery_v",
    "battery_w": "battery_w",              # + = charging
    "pv_w": "inverter_pv_w",
    "ac_out_w": "inverter_load_w",
    "grid_v": "inverter_grid_v",
    "mode": "inverter_mode",
    "mode_name": "inverter_mode_name",
    "output_priority": "inverter_output_priority",
    "charger_priority": "inverter_charger_priority",
    "warnings": "inverter_warnings",
}


def api_state(status: dict) -> dict:
    green = status.get("green") or {}
    sun_known = bool(green) and green.get("state") != STALE
    tariff = status.get("tariff") or {}
    return {
        "time": status.get("server_time"),
        "mode": status.get("pool_source"),
        "reason": status.get("pool_reason"),
        "pool_amps": status.get("pool_amps"),
        "charge_now_amps": status.get("charge_now_amps"),
        "charge_now_until": status.get("charge_now_until"),
        "non_scheduled_amps": status.get("non_scheduled_amps"),
        "green_mode": status.get("green_mode"),
        **_mode(status),
        "schedule": _schedule(status),
        "charging": any(unit["actual_amps"] >= 1.0 for unit in status.get("slaves", [])),
        "wiring_max_amps_all_twcs": status.get("wiring_max_amps_all_twcs"),
        "solar_w": green.get("solar_w") if sun_known else None,
        "grid_w": green.get("grid_w") if sun_known else None,   # + = export
        "house_w": _not_negative(green.get("house_w")) if sun_known else None,
        "car_w": _car_w(status),
        "meter_state": green.get("state"),
        "meter_reading_at": green.get("last_reading_at"),
        # Null without a tariff ([tariff] kind = "none"); a colour is null until published.
        "tempo_today": tariff.get("tempo_today"),
        "tempo_tomorrow": tariff.get("tempo_tomorrow"),
        "price_eur_kwh": tariff.get("price_eur_kwh"),
        "export_eur_kwh": tariff.get("export_eur_kwh"),
        "tariff_period": tariff.get("period"),       # "peak" / "offpeak"
        # While tomorrow is unknown: the careful assumption the plan uses (tempo.md §3).
        "tempo_tomorrow_assumed": (tariff.get("tomorrow") or {}).get("assumed"),
        **_inverter(status.get("inverter")),
        **_plan(status.get("plan")),
        **_goal(status.get("charge_goal")),
        # What the chargers have delivered in their life: never decreasing (HA's Energy
        # dashboard); null while a charger has not said.
        "car_lifetime_kwh": _lifetime_kwh(status.get("slaves", [])),
        # The home's totals since the history began (TWCManager.history): they only grow.
        **{f"energy_{name}": value for name, value in (status.get("energy") or {}).items()},
        "chargers": [_charger(unit) for unit in status.get("slaves", [])],
    }


def _lifetime_kwh(units: list[dict]):
    values = [unit.get("kwh") for unit in units]
    return None if not values or None in values else sum(values)


# The page's mode selector: its keys, and the headline for each.
MODE_NAMES = {"boost": "Boost", "eco-solar": "Eco (sun)", "eco-cheapest": "Eco (cheapest)",
              "scheduled": "Scheduled", "fixed": "Fixed amps", "off": "Do not charge",
              "goal": "Charge goal"}


def _mode(status: dict) -> dict:
    """Which of the page's modes is in force, and its headline."""
    source, fixed = status.get("pool_source"), status.get("non_scheduled_amps")
    if source == "charge_now":
        choice = "boost"
    elif source == "goal":
        choice = "goal"
    elif fixed == -1:
        choice = "eco-cheapest" if status.get("green_mode") == "cheapest" else "eco-solar"
    elif fixed and fixed > 0:
        choice = "fixed"
    elif (status.get("scheduled_amps") or 0) > 0:
        choice = "scheduled"
    elif fixed == 0:
        choice = "off"
    else:
        choice = None
    name = MODE_NAMES.get(choice)
    if choice == "fixed":
        name = f"Fixed {fixed} A"
    return {"mode_choice": choice, "mode_name": name}


def _schedule(status: dict) -> dict | None:
    amps = status.get("scheduled_amps")
    if amps is None or amps <= 0:
        return None
    return {"amps": amps, "start": status.get("scheduled_start"),
            "end": status.get("scheduled_end"), "days_bitmap": status.get("scheduled_days_bitmap")}


def _not_negative(watts):
    # A house never feeds power in: a negative figure is a timing mismatch, not a reading.
    return None if watts is None else max(watts, 0)


def _car_w(status: dict):
    watts_per_amp = status.get("watts_per_amp")
    if not watts_per_amp:
        return None
    return round(sum(unit["actual_amps"] for unit in status.get("slaves", [])) * watts_per_amp)


def _inverter(inverter: dict | None) -> dict:
    """The PI30's figures, all null when there is none or its reading is stale."""
    inverter = inverter or {}
    figures = {name: inverter.get(key) for key, name in INVERTER_FIGURES.items()}
    figures["inverter_state"] = inverter.get("state")        # null: no inverter configured
    figures["inverter_reading_at"] = inverter.get("last_update_at")
    figures["inverter_error"] = inverter.get("last_error")
    return figures


def _plan(plan: dict | None) -> dict:
    """What the plan wants of the battery now, and why (null without a tariff or inverter)."""
    battery = (plan or {}).get("battery") or {}
    return {"plan_output_priority": battery.get("output_priority"),
            "plan_output_reason": battery.get("output_reason"),
            "plan_charger_priority": battery.get("charger_priority"),
            "plan_charger_reason": battery.get("charger_reason"),
            "battery_target_soc_pct": battery.get("target_soc_pct"),
            "battery_target_reason": battery.get("target_reason"),
            "plan_automate": (plan or {}).get("automate"),
            "inverter_fallback": (plan or {}).get("fallback")}


def _goal(goal: dict | None) -> dict:
    """"N kWh by HH:MM": null without one."""
    goal = goal or {}
    windows = goal.get("grid_windows") or []
    return {"charge_goal_kwh": goal.get("kwh"), "charge_goal_by": goal.get("by"),
            "charge_goal_done_kwh": goal.get("done_kwh"),
            "charge_goal_need_kwh": goal.get("need_kwh"),
            "charge_goal_grid_start": windows[0]["start"] if windows else None,
            "charge_goal_grid_eur_kwh": windows[0]["price_eur_kwh"] if windows else None}


def _charger(unit: dict) -> dict:
    volts = unit.get("volts")
    return {
        "id": unit["twcid"],
        "state": unit["state"],
        "state_name": STATE_NAMES.get(unit["state"], "unknown"),
        "amps_offered": unit["offered_amps"],
        "amps_drawn": unit["actual_amps"],
        "amps_max": unit["max_amps"],
        "volts": volts,
        "lifetime_kwh": unit.get("kwh"),
        "session_kwh": unit.get("session_kwh"),
        "offer_reason": unit.get("offer_reason"),
        "seconds_since_heard": unit.get("seconds_since_heard"),
    }
