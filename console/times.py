"""Times as the console shows them: always in the local zone of the machine medops runs on, the zone named.

No Textual here: the CLI (`medops limits history`) prints the same times without loading the UI.
"""

from __future__ import annotations

from datetime import datetime


def local_time(wall: float) -> datetime:
    """A wall time in the time zone of the machine medops runs on: every time the console shows is one."""
    return datetime.fromtimestamp(wall).astimezone()


def clock_time(wall: float, *, zone: bool = False) -> str:
    """A wall time as local HH:MM:SS, for alert, tuner and reply times; with `zone`, the zone's name after it."""
    return f"{local_time(wall):%H:%M:%S %Z}" if zone else f"{local_time(wall):%H:%M:%S}"


def when(wall: float, now: float | None) -> str:
    """Local time; the date too unless it is the same day as `now`."""
    moment = local_time(wall)
    if now is not None and moment.date() == local_time(now).date():
        return f"{moment:%H:%M:%S}"
    return f"{moment:%m-%d %H:%M:%S}"


def zone(now: float | None) -> str:
    """'CET time': the local zone the times are shown in (as of `now`, which settles summer time)."""
    if now is None:
        return "local time"
    return f"{local_time(now):%Z} time"
