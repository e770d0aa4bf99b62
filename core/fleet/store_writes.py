"""A write to the fleet's store by a command run by hand (`fleet forget`, `fleet unset`, `fleet clear`, a
fleet command): its own short-lived client, and the store's refusals said in words that tell what to do.

The store's ACL decides who may write what (`acl.py`); a refusal (NOPERM) names the store user to set, an
unreachable store says so. Both are `FleetUnavailable`, the one error the CLI and the console print.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
from redis.exceptions import NoPermissionError, RedisError

from medops.core.fleet.view import FleetUnavailable
from medops.core.settings.redact import redact_url


@asynccontextmanager
async def writing(url: str, password: str | None, may_not: str, set_user_to: str,
                  decode_responses: bool = False) -> AsyncIterator[redis.Redis]:
    """A client to `url` for the block's writes, closed after it.

    A NOPERM reads "the store user of URL may not {may_not}: set store_user (MEDOPS_STORE_USER) to
    {set_user_to} (see `medops fleet acl`)"; any other store error, or none reached, "cannot be written"."""
    if not url:
        raise FleetUnavailable("no quota store is set: set store_url (MEDOPS_STORE_URL) to the fleet's Redis")
    client = redis.Redis.from_url(url, password=password or None, socket_timeout=2, socket_connect_timeout=2,
                                  decode_responses=decode_responses)
    try:
        yield client
    except NoPermissionError:
        raise FleetUnavailable(f"the store user of {redact_url(url)} may not {may_not}: set store_user "
                               f"(MEDOPS_STORE_USER) to {set_user_to} (see `medops fleet acl`)") from None
    except (RedisError, OSError) as exc:
        raise FleetUnavailable(f"quota store {redact_url(url)} cannot be written ({type(exc).__name__})") from None
    finally:
        await client.aclose()
