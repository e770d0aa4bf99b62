"""Which book holds the agent keys: the fleet's store when `store_url` is set, else the data folder."""

from __future__ import annotations

from collections.abc import Mapping

from medops.core.clock import Clock
from medops.core.fleet.membership import fleet_namespace
from medops.core.fleet.store import QuotaStore
from medops.core.gateway.key_file import FileKeyBook
from medops.core.gateway.key_redis import RedisKeyBook
from medops.core.gateway.keys import KeyBook
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations

COMMAND_BUDGET = 2.0  # seconds a key command (add, list, revoke) waits on the store


def open_key_book(settings: Settings, locations: Locations, clock: Clock, env: Mapping[str, str],
                  budget: float | None = None) -> KeyBook:
    """The key book every gateway of this fleet (or data folder) shares. `budget`: the store's time per call
    (default: store_timeout, as the quota's own calls)."""
    if not settings.store_url:
        return FileKeyBook(locations.data_dir, clock)
    store = QuotaStore(settings.store_url, fleet_namespace(settings, env), clock,
                       password=env.get("MEDOPS_STORE_PASSWORD"),
                       budget=settings.store_timeout if budget is None else budget)
    return RedisKeyBook(store, clock)
