"""Text from outside (the fleet's store, another member) made inert: control characters shown, never sent.

A C0 control (ESC, BEL, CR...) becomes its Unicode control picture (U+241B for
ESC), DEL U+2421, and any other character Python does not print (C1 such as
\\x9b, bidi overrides) its \\x / \\u escape; so OSC 52 or a CSI sequence reads
as what it is and never reaches a terminal. Names (instance, host, model,
role...) are also checked against a short pattern: one that fails it is shown
quoted and escaped, so it cannot pass for a real member or model.
"""

from __future__ import annotations

import re

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}")
NAME_SHOWN = 64  # characters of a name that fails the pattern shown (it is quoted and marked)
_LINE_BREAKS = "\n"


def visible(value: object, *, keep_lines: bool = False) -> str:
    """`value` as text with every control character made visible (newlines kept when `keep_lines`)."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(_shown(ch, keep_lines) for ch in text)


def _shown(ch: str, keep_lines: bool) -> str:
    if ch.isprintable() or (keep_lines and ch in _LINE_BREAKS):
        return ch
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # ␀..␟: ESC reads as ␛
    if code == 0x7F:
        return "\u2421"  # ␡
    return ch.encode("unicode_escape").decode("ascii")  # \x9b, \u202e, ...


def name(value: object) -> str:
    """A name read from outside: itself when it matches `NAME`, else quoted, escaped and cut (never markup,
    never control)."""
    text = value if isinstance(value, str) else str(value)
    if NAME.fullmatch(text):
        return text
    cut = text[:NAME_SHOWN] + ("…" if len(text) > NAME_SHOWN else "")
    return "?" + repr(cut)
