"""`medops fleet clear MODEL`: an operator lifts every 429 block and 498 hold on a model, for the whole fleet.

One call of the library's `medops_clear`, whose only key is the model's signal hash: with the fleet's ACL
users an operator may run it and nothing else of the library. Members learn Groq's real state again from its
next answer (a 429 still due blocks them again).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

import redis.asyncio as redis
from redis.exceptions import NoPermissionError, RedisError, ResponseError

from medops.core.fleet.view import FleetUnavailable
from medops.core.fleet.wire import Wire
from medops.core.settings.redact import redact_url


async def clear_model(url: str, namespace: str, model: str, password: str | None = None) -> bool:
    """Lift the model's blocks and holds; True if there were any. `FleetUnavailable` if the store refuses."""
    if not url:
        raise FleetUnavailable("no quota store is set: set store_url (MEDOPS_STORE_URL) to the fleet's Redis")
    client = redis.Redis.from_url(url, password=password or None, socket_timeout=2, socket_connect_timeout=2,
                                  decode_responses=True)
    try:
        call = Wire(namespace).clear(model)
        reply = await cast(Awaitable[Any], client.fcall(call.function, len(call.keys), *call.keys, *call.args))
    except NoPermissionError:
        raise FleetUnavailable(f"the store user of {redact_url(url)} may not lift blocks: set store_user "
                               "(MEDOPS_STORE_USER) to an operator user (see `medops fleet acl`)") from None
    except ResponseError as exc:
        if "Function not found" in str(exc):
            raise FleetUnavailable(f"quota store {redact_url(url)} has no medops library loaded: no member has "
                                   "run on it, so nothing is blocked") from None
        # A user allowed FCALL but not what the function does gets a script error, not NOPERM.
        raise FleetUnavailable(f"quota store {redact_url(url)} refused to clear {model!r} ({type(exc).__name__}): "
                               "is store_user (MEDOPS_STORE_USER) an operator user? See `medops fleet acl`") from None
    except (RedisError, OSError) as exc:
        raise FleetUnavailable(f"quota store {redact_url(url)} cannot be written ({type(exc).__name__})") from None
    finally:
        await client.aclose()
    return int(reply[1]) > 0
