"""Leave cleanly when the terminal goes away, instead of spinning or hanging on a dead tty.

SIGHUP (and a once-a-second check that notices a closed terminal that sent no
signal: its `tcgetattr` starts failing) means the terminal is gone; SIGTERM asks
for an ordinary exit. Textual writes the screen through a thread with a bounded
queue: once a write to the dead tty fails that thread ends, and the next 30
writes block the event loop for good. So when the terminal is gone, stdin,
stdout and stderr are pointed at /dev/null first, and a last-resort timer ends
the process if shutdown still does not finish.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import termios
import threading
from collections.abc import Callable


def install_signal_handlers(on_hangup: Callable[[], None], on_terminate: Callable[[], None]) -> Callable[[], None]:
    """Route SIGHUP to `on_hangup` and SIGTERM to `on_terminate` on the running loop; returns an undo."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig, handler in ((signal.SIGHUP, on_hangup), (signal.SIGTERM, on_terminate)):
        try:
            loop.add_signal_handler(sig, handler)
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


def silence_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null: writes to the dead terminal neither fail nor block."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            try:
                os.dup2(devnull, fd)
            except OSError:
                continue
    finally:
        os.close(devnull)


def end_process_after(seconds: float, code: int) -> threading.Timer:
    """A last resort: end the process after `seconds` if an orderly exit has not (daemon timer)."""
    timer = threading.Timer(seconds, os._exit, (code,))
    timer.daemon = True
    timer.start()
    return timer
