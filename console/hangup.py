"""Leave cleanly when the terminal goes away, instead of spinning on a dead tty.

SIGHUP and SIGTERM ask the app to exit; a once-a-second check notices a closed
terminal that sent no signal (its `tcgetattr` starts failing).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import termios
from collections.abc import Callable

HANGUP_SIGNALS = (signal.SIGHUP, signal.SIGTERM)


def install_signal_handlers(on_hangup: Callable[[], None]) -> Callable[[], None]:
    """Route SIGHUP/SIGTERM to `on_hangup` on the running loop; returns an undo."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in HANGUP_SIGNALS:
        try:
            loop.add_signal_handler(sig, on_hangup)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread, or a platform without it
        installed.append(sig)

    def undo() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return undo


def terminal_fd() -> int | None:
    """The controlling terminal's descriptor, if stdin is one."""
    stream = sys.__stdin__
    if stream is None:
        return None
    try:
        fd = stream.fileno()
    except (ValueError, OSError):
        return None
    return fd if os.isatty(fd) else None


def terminal_alive(fd: int) -> bool:
    """False once the terminal behind `fd` has hung up or closed."""
    try:
        termios.tcgetattr(fd)
    except (termios.error, OSError):
        return False
    return True
