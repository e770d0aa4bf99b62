"""The fleet store's URL checked once, as the Redis client will read it, so a bad one is a clear ConfigError.

redis-py reads the URL only when a command first opens the store, and then a
port of 99999, `?socket_timeout=abc` or an unclosed `[::1` end in a ValueError
traceback from deep inside it. Checked with the client's own parser here, the
message names the part that is wrong; the URL is shown without its credentials.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from medops.core.errors import ConfigError
from medops.core.settings.redact import redact_url

USAGE = "use redis://host:6379/0 (or rediss:// for TLS), with the password in the URL or MEDOPS_STORE_PASSWORD"


def check_store_url(url: str, origin: str = "") -> None:
    """`ConfigError` naming what is wrong with `url` as the fleet's store (from `origin`); nothing if it is fine."""
    problem = store_url_problem(url)
    if problem:
        where = f" (from {origin})" if origin else ""
        raise ConfigError(f"setting store_url = {shown_url(url)!r}{where}: {problem}; {USAGE}")


def store_url_problem(url: str) -> str:
    """What is wrong with `url`, in words naming the part ("" when the client can use it)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "its host has a '[' without its ']' (an IPv6 address is written [::1])"
    if parts.scheme not in ("redis", "rediss"):
        return "it is not a Redis URL"
    try:
        port = parts.port
    except ValueError:
        return "its port is not a number from 1 to 65535"
    if port == 0:
        return "its port is not a number from 1 to 65535"
    if not parts.hostname:
        return "it names no host"
    from redis.connection import parse_url  # the client's own reading of the rest (query parameters, db)

    try:
        parse_url(url)
    except ValueError as exc:
        return f"the Redis client refuses it: {str(exc).rstrip('.')}"
    return ""


def shown_url(url: str) -> str:
    """The URL without credentials, also when it cannot be parsed (what sits before an '@' is hidden, and the
    query's secret parameters, as `redact_url` hides them)."""
    redacted = redact_url(url)
    if redacted != "<unparsable URL>":
        return redacted
    hidden = re.sub(r"(?<=://)[^/?#]*@", "***@", url)
    return re.sub(r"(?i)\b(password|pass|pwd|username|user|token|key|secret)=[^&#]*", r"\1=***", hidden)
