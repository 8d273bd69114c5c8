"""A grid meter that lives in Home Assistant (issue 13 point 5): for homes whose only grid
reading is an HA entity (a Linky integration, a Shelly, a P1 reader). Read over HA's REST API
with a long-lived token, every `interval_s`, with the other meters' rules: the last good
reading kept, the same stale fail-safe, failures logged once (CommandSource's bookkeeping).

HA keeps an entity's last value when its device dies, so a reading also counts as failed when
the entity has not reported for `stale_after_s` (`last_reported`, else `last_updated`)."""
from __future__ import annotations

import time
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Callable

from ..httpjson import HttpJsonError, request_json
from .command import CommandSource

WATTS = {"W": 1.0, "kW": 1000.0}


class HomeAssistantMeter(CommandSource):
    def __init__(self, base_url: str, token: str, grid_entity: str, *, solar_entity: str = "",
                 export_positive: bool = False, interval_s: float, stale_after_s: float,
                 timeout_s: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, active: Callable[[], bool] = lambda: True,
                 idle_interval_s: float = 60.0) -> None:
        super().__init__(f"Home Assistant {grid_entity}", interval_s, stale_after_s,
                         timeout_s=timeout_s, clock=clock, wall=wall, active=active,
                         idle_interval_s=idle_interval_s)
        self.base_url, self.token = base_url.rstrip("/"), token
        self.grid_entity, self.solar_entity = grid_entity, solar_entity
        # Most HA grid sensors count import as positive; ours is + = export.
        self.export_positive = export_positive

    def read_once(self):
        self.last_attempt_at = self._clock()
        try:
            grid = self._watts(self.grid_entity)
            solar = self._watts(self.solar_entity) if self.solar_entity else None
        except HttpJsonError as exc:
            return self._failed(str(exc))
        return self._store(grid if self.export_positive else -grid, solar, None)

    def _watts(self, entity: str) -> float:
        body = request_json(urllib.request.Request(
            f"{self.base_url}/api/states/{urllib.parse.quote(entity)}",
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"}),
            self.timeout_s, "Home Assistant")
        state = body.get("state")
        unit = (body.get("attributes") or {}).get("unit_of_measurement", "W")
        try:
            value = float(state) * WATTS[unit]
        except (TypeError, ValueError, KeyError):
            raise HttpJsonError(f"Home Assistant: {entity} = {state!r} {unit}: expected a power "
                                "in W or kW") from None
        reported = body.get("last_reported") or body.get("last_updated")
        if reported:
            try:
                age_s = self._wall() - datetime.fromisoformat(reported).timestamp()
            except (TypeError, ValueError):
                age_s = 0.0
            if age_s > self.stale_after_s:
                raise HttpJsonError(f"Home Assistant: {entity} has not reported for "
                                    f"{age_s:.0f} s")
        return value
