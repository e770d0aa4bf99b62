"""The subcommands' stdout and stderr, with every control character shown rather than sent.

`medops fleet`, `limits history`, `status`... print what members wrote to the
store (roles, models, alert texts, operators); one OSC 52 in a model name must
not set the operator's clipboard. Wrapping the streams once, where the CLI
starts, covers every print and every future one. Newlines pass through; `--json`
output is unchanged (JSON escapes control characters itself).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from medops.core.inert_text import visible


class InertStream:
    """A text stream that writes `visible(text)`; everything else is the wrapped stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(visible(text, keep_lines=True))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._stream, attribute)


@contextlib.contextmanager
def inert_output() -> Iterator[None]:
    """stdout and stderr wrapped for the block, as they were after it."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = InertStream(out), InertStream(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
