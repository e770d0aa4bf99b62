"""What the console prints when it crashes: where it happened, never what it held.

Textual's own report shows every frame's local variables, and an exception's message
may quote what it was given; either may be patient data. This report names the
exception's type and, per frame, the file, line and function only.
"""

from __future__ import annotations

import traceback


def crash_report(error: BaseException | None) -> str:
    """A crash report of `error` for the terminal: its type and where, no values and no message."""
    if error is None:
        return "medops console stopped on an unexpected error (no details available)."
    frames = traceback.extract_tb(error.__traceback__)
    where = "\n".join(f"  {frame.filename}:{frame.lineno} in {frame.name}" for frame in frames)
    return (f"medops console stopped on an unexpected {type(error).__name__}. Where it happened (values and "
            f"the error's message are left out: they may hold patient data):\n{where or '  (no frames)'}\n"
            "Please report this, with the lines above, to whoever maintains medops here.")
