"""One status snapshot of the home, and its renderings: the PHP pages' getStatus text, the JSON
status (getStatusJson, read by the web pages and the JSON API) and dumpState.

A new figure is one edit in `snapshot()` (plus its use on a page); getStatus renders the
original's fields from the same snapshot, so the two can never disagree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..core import policy
from ..core.settings import Settings, shown_settings
from ..core.site import Site, watts_per_amp
from ..twc.master import Master


@dataclass
class Home:
    """What the IPC commands and the status read: the site core and the RS-485 engine."""
    site: Site
    master: Master

    @property
    def settings(self) -> Settings:
        return self.site.settings


@dataclass
class Context:
    """What a request may touch besides the home, supplied by the daemon."""
    now: float                                  # monotonic
    now_wall_s: float                           # unix seconds
    save_settings: Callable[[str], None]
    send: Callable[[bytes], None]               # write a frame to the bus
    extra_state: Callable[[], dict] = dict      # link, green source … (edges' own status)
    green_history: Callable[[], list] = list    # one sample a minute, for the chart
    inverter: object | None = None              # the PI30 poller (pi30.source), if any
    tempo: object | None = None                 # the Tempo service (tariff.service), if any
    plan: object | None = None                  # the plan runner (plan.runner), if any
    history: object | None = None               # the energy recorder (history.py)


def hhmm(minutes: int) -> str:
    """`HH:MM`, `-1:00` when unset: the PHP pre-selects <option>s by this exact text."""
    if minutes < 0:
        return "-1:00"
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def charge_now_amps(settings: Settings, now_wall_s: float) -> float:
    return settings.charge_now_amps if policy.charge_now_active(settings, now_wall_s) else 0.0


def snapshot(home: Home, ctx: Context) -> dict:
    """The state as numbers: every figure the daemon shows, in one place."""
    s, pool, master = home.settings, home.site.pool, home.master
    lim = master.limits
    charging_amps = charge_now_amps(s, ctx.now_wall_s)
    return {
        "pool_amps": round(max(pool.amps, 0.0), 2),
        "pool_source": pool.source,
        "pool_reason": pool.reason,
        "wiring_max_amps_all_twcs": lim.wiring_max_amps_all_twcs,
        "wiring_max_amps_per_twc": lim.wiring_max_amps_per_twc,
        "min_amps_per_twc": lim.min_amps_per_twc,
        "charge_now_amps": charging_amps,
        "charge_now_until": s.charge_now_until_at_wall if charging_amps else None,
        "non_scheduled_amps": s.non_scheduled_amps,
        "scheduled_amps": s.scheduled_amps,
        "scheduled_start": hhmm(s.scheduled_start_min),
        "scheduled_end": hhmm(s.scheduled_end_min),
        "scheduled_days_bitmap": s.scheduled_days_bitmap,
        "resume_green_at": hhmm(s.resume_green_min),
        "charge_goal": home.site.goal.status(s),
        # The Eco flavour in force: the page's choice, else the configuration's.
        "green_mode": s.green_mode or home.site.green_service.tracker.params.mode or "solar",
        "server_time": ctx.now_wall_s,
        "watts_per_amp": watts_per_amp(master.slaves),
        "slaves": [{
            "twcid": slave.id_hex,
            "protocol": slave.protocol,
            "max_amps": slave.rated_amps,
            "actual_amps": round(slave.actual_amps, 2),
            "offered_amps": slave.offered_amps,
            "offer_ever_changed": slave.offer_ever_changed,
            "reported_limit_amps": round(slave.reported_limit_amps, 2),
            "state": slave.state,
            "idle": slave.idle,
            "seconds_since_heard": round(ctx.now - slave.last_heard_at, 1),
            "kwh": slave.kwh,
            "session_kwh": home.site.sessions.session_kwh(slave),
            "offer_reason": (home.site.last_offers[slave.id_hex].reason
                             if slave.id_hex in home.site.last_offers else None),
            "volts": list(slave.volts) if slave.volts else None,
            "config_errors": list(slave.config_errors),
        } for slave in master.slaves],
        "bus": {"other_master": (f"{master.problems.other_master_id:04X}"
                                 if master.problems.other_master_id is not None else None),
                "id_clashes": master.problems.id_clashes,
                "refused_linkreadies": master.problems.refused_linkreadies},
        **ctx.extra_state(),
    }


def offered_text(unit: dict) -> str:
    """lastAmpsOffered as the original's getStatus showed it: the unit's own limit as a
    float (`0.0`) until the first change, then whole amps (`21`, `0`)."""
    amps = unit["offered_amps"]
    return str(amps) if unit["offer_ever_changed"] else str(float(amps))


def get_status_text(snap: dict) -> str:
    """The getStatus reply, field for field as original-program.md §8.7 (backticks, then
    `~` per TWC), rendered from the snapshot."""
    fields = [
        f"{snap['pool_amps']:.2f}",
        f"{snap['wiring_max_amps_all_twcs']:.2f}",
        f"{snap['min_amps_per_twc']:.2f}",
        f"{snap['charge_now_amps']:.2f}",
        str(int(snap["non_scheduled_amps"])),
        str(int(snap["scheduled_amps"])),
        snap["scheduled_start"],
        snap["scheduled_end"],
        str(int(snap["scheduled_days_bitmap"])),
        snap["resume_green_at"],
        "0",  # car API login needed: the Tesla owner API is out of scope (decisions §5)
        str(len(snap["slaves"])),
    ]
    for unit in snap["slaves"]:
        fields.append("~".join([unit["twcid"], str(float(unit["max_amps"])),
                                f"{unit['actual_amps']:.2f}", offered_text(unit),
                                str(unit["state"])]))
    return "`".join(fields)


def dump_state(home: Home, ctx: Context) -> str:
    """Everything, for a person debugging: the snapshot's inputs and each unit's bookkeeping."""
    master, pool = home.master, home.site.pool
    lim = master.limits
    lines = [
        f"time={ctx.now_wall_s:.0f}, masterID={master.master_id:04X}, "
        f"wiringMaxAmpsAllTWCs={lim.wiring_max_amps_all_twcs:g}, "
        f"wiringMaxAmpsPerTWC={lim.wiring_max_amps_per_twc:g}, "
        f"minAmpsPerTWC={lim.min_amps_per_twc:g}",
        f"pool={pool.amps:.2f} source={pool.source} reason={pool.reason}",
        # Tokens and the home's position stay in the file, never on a page (issue 15).
        f"settings: {shown_settings(home.settings)}",
    ]
    lines += [f"{key}: {value}" for key, value in ctx.extra_state().items()]
    problems = master.problems
    lines.append(f"bus: decoder={master.decoder.stats} other_master="
                 f"{problems.other_master_id} id_clashes={problems.id_clashes} "
                 f"refused_linkreadies={problems.refused_linkreadies}")
    for slave in master.slaves:
        lines.append(f"slave {slave.id_hex}: " + ", ".join(
            f"{key}={value!r}" for key, value in vars(slave).items()))
    return "\n".join(lines)
