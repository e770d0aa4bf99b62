"""What the console shows for an exception: ours carry safe messages, anything else only its type."""

from __future__ import annotations


def describe_error(exc: BaseException) -> str:
    """Our errors carry safe messages (never patient data); anything else is named by type only."""
    from medops.core.errors import MedopsError

    if isinstance(exc, MedopsError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__} (unexpected; see the log)"
