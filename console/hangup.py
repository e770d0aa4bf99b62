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
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from textual.app import App

STOP_TIMEOUT = 5.0  # seconds the core gets to stop before the console leaves anyway
TTY_CHECK_INTERVAL = 1.0
HARD_EXIT_GRACE = 1.0  # seconds Textual gets to shut down once the core has stopped, when the terminal is gone
HANGUP_EXIT_CODE = 129  # 128 + SIGHUP, as a shell reports it
TERMINATE_EXIT_CODE = 143  # 128 + SIGTERM


class Leaving:
    """The app's way out on SIGHUP, SIGTERM or a dead tty: stop the core first, then exit with the shell's code."""

    def __init__(self, app: App[Any], stop_core: Callable[[], Awaitable[None]]) -> None:
        self._app = app
        self._stop_core = stop_core
        self._undo: Callable[[], None] | None = None
        self.leaving = False

    def watch(self) -> None:
        """Install the signal handlers and, on a real terminal, the once-a-second check of the tty."""
        self._undo = install_signal_handlers(self.terminal_gone, self.terminate)
        fd = None if self._app.is_headless else terminal_fd()
        if fd is not None:
            self._app.set_interval(TTY_CHECK_INTERVAL, partial(self._check_terminal, fd))

    def unwatch(self) -> None:
        """Remove the signal handlers (the core is stopping anyway)."""
        if self._undo is not None:
            self._undo()
            self._undo = None

    def terminal_gone(self) -> None:
        """SIGHUP or a dead tty: stop the core, then leave; nothing more reaches the terminal."""
        if self.leaving:
            return
        self.leaving = True
        if not self._app.is_headless:  # a real terminal: never touch a test runner's descriptors
            silence_terminal()
            # in case the loop itself stalls before the core is stopped
            end_process_after(STOP_TIMEOUT + HARD_EXIT_GRACE, HANGUP_EXIT_CODE)
        self._leave(HANGUP_EXIT_CODE, terminal_gone=True)

    def terminate(self) -> None:
        """SIGTERM: an ordinary exit (the terminal may well be alive), stopping the core first."""
        if self.leaving:
            return
        self.leaving = True
        self._leave(TERMINATE_EXIT_CODE, terminal_gone=False)

    def _leave(self, code: int, terminal_gone: bool) -> None:
        self._app.run_worker(self._stop_then_exit(code, terminal_gone), exclusive=True, exit_on_error=False,
                             group="leave")

    async def _stop_then_exit(self, code: int, terminal_gone: bool) -> None:
        await self._stop_core()
        if terminal_gone and not self._app.is_headless:
            # Textual's shutdown can block on its output thread, which died writing to the
            # dead tty; with the core stopped there is nothing left to lose by ending here.
            end_process_after(HARD_EXIT_GRACE, code)
        self._app.exit(return_code=code)

    def _check_terminal(self, fd: int) -> None:
        if not terminal_alive(fd):
            self.terminal_gone()


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
