"""How figures read on screen: bars, counts, sizes and durations as Textual markup.

Bars use block characters as well as colour, so they read the same under
NO_COLOR and on a plain terminal. Colours are theme variables ($success...).
"""

from __future__ import annotations

from medops.core.inert_text import visible

WARN_AT = 0.75
CRITICAL_AT = 0.9


def level(fraction: float) -> str:
    """The theme colour for a fill level: calm, warning or critical."""
    if fraction >= CRITICAL_AT:
        return "$error"
    if fraction >= WARN_AT:
        return "$warning"
    return "$success"


def bar(used: float, limit: float, width: int) -> str:
    """A fill bar `used/limit` wide `width` cells, coloured by how full it is."""
    width = max(1, width)
    fraction = min(1.0, used / limit) if limit > 0 else 0.0
    filled = round(fraction * width)
    if used > 0 and filled == 0:
        filled = 1  # anything in use shows, however small
    return f"[{level(fraction)}]{'█' * filled}[/][dim]{'░' * (width - filled)}[/]"


def count(value: float) -> str:
    """A count short enough for a narrow column: 950, 14.4k, 2.1M."""
    value = float(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:.0f}"


def size(num_bytes: float) -> str:
    """Bytes in binary units: 512 B, 9.8 KiB, 10 MiB."""
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def duration(seconds: float | None) -> str:
    """Seconds as the shortest clear span: 0.4s, 23s, 4m05s, 5h02m, 2d03h."""
    if seconds is None:
        return "-"
    if seconds < 0:
        seconds = 0.0
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def age(seconds: float) -> str:
    """A whole-second age or time left, as the fleet and request tables show it: 7s, 3m05s, 2h01m."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def millis(seconds: float) -> str:
    """A short latency in milliseconds."""
    return f"{seconds * 1000:.0f}ms"


def percent(fraction: float) -> str:
    return f"{fraction * 100:.0f}%"


def text(value: object) -> str:
    """Any value made safe to drop into markup: every `[` escaped (rich's `escape` lets Textual's `[$error]`,
    `[B]` and `[@click=...]` through), control characters shown, not sent. Textual reads a backslash just
    before `[` as an escape, so a value ending in one gets a zero-width space: the tag after it stays a tag."""
    shown = visible(value, keep_lines=True).replace("[", "\\[")
    return shown + "\u200b" if shown.endswith("\\") else shown
