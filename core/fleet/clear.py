"""`medops fleet clear MODEL`: an operator lifts every 429 block and 498 hold on a model, for the whole fleet.

One call of the library's `medops_clear`, whose only key is the model's signal hash: with the fleet's ACL
users an operator may run it and nothing else of the library. Members learn Groq's real state again from its
next answer (a 429 still due blocks them again).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

from redis.exceptions import NoPermissionError, ResponseError

from medops.core.fleet.store_writes import writing
from medops.core.fleet.view import FleetUnavailable
from medops.core.fleet.wire import Wire
from medops.core.settings.redact import redact_url


async def clear_model(url: str, namespace: str, model: str, password: str | None = None) -> bool:
    """Lift the model's blocks and holds; True if there were any. `FleetUnavailable` if the store refuses."""
    async with writing(url, password, "lift blocks", "an operator user", decode_responses=True) as client:
        call = Wire(namespace).clear(model)
        try:
            reply = await cast(Awaitable[Any], client.fcall(call.function, len(call.keys), *call.keys, *call.args))
        except NoPermissionError:
            raise  # `writing` says which user to set
        except ResponseError as exc:
            if "Function not found" in str(exc):
                raise FleetUnavailable(f"quota store {redact_url(url)} has no medops library loaded: no member has "
                                       "run on it, so nothing is blocked") from None
            # A user allowed FCALL but not what the function does gets a script error, not NOPERM.
            raise FleetUnavailable(f"quota store {redact_url(url)} refused to clear {model!r} "
                                   f"({type(exc).__name__}): is store_user (MEDOPS_STORE_USER) an operator user? "
                                   "See `medops fleet acl`") from None
    return int(reply[1]) > 0
