"""Energy meters the site reads (edges): the `solaredge` command run per reading or kept
running as a stream."""
from __future__ import annotations

from typing import Callable

from ..config import GreenConfig
from ..core.interfaces import SiteMeter


def make_meter(green: GreenConfig, *, clock: Callable[[], float],
               active: Callable[[], bool]) -> SiteMeter:
    """The site meter the configuration asks for: a Home Assistant entity when
    `[green] ha_grid_entity` is set; else `[green] command` kept running as
    `solaredge --stream` when `[green] stream` is on and it is the solaredge command reading
    the grid, else run per reading."""
    from .command import CommandSource
    from .stream import StreamSource, stream_argv

    # Green tracking off: read once a minute for the status panel only.
    idle_interval_s = max(60.0, green.interval_s)
    if green.ha_grid_entity:
        from ..config import read_secret
        from .homeassistant import HomeAssistantMeter

        return HomeAssistantMeter(
            green.ha_url, read_secret(green.ha_token_file, "green.ha_token_file"),
            green.ha_grid_entity, solar_entity=green.ha_solar_entity,
            export_positive=green.ha_export_positive, interval_s=green.interval_s,
            stale_after_s=green.stale_after_s, clock=clock, active=active,
            idle_interval_s=idle_interval_s)
    argv = stream_argv(green.command) if green.stream else None
    if argv is not None:
        return StreamSource(argv, green.interval_s, green.stale_after_s, command=green.command,
                            clock=clock, active=active, idle_interval_s=idle_interval_s)
    return CommandSource(green.command, green.interval_s, green.stale_after_s, clock=clock,
                         active=active, idle_interval_s=idle_interval_s)
