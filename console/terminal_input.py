"""Terminal input where a bracketed paste stays text.

Textual's parser reads an ESC inside a bracketed paste as the start of a key sequence
and, when it matches none, sends its characters on as key presses: a pasted colour code
or stray escape then switches tabs, opens forms and changes the theme, and the paste
loses those characters. Here every ESC between the paste's start and end markers is
turned into its control picture (␛) before Textual's parser sees it, so the whole paste
arrives as one `Paste` event and no part of it acts.

Outside a paste, Escape followed at once by a printable key (as an SSH link delivers
them, both bytes in one read) is Escape, then that key. Textual reads the pair as one
alt key, and as the macOS Option characters for the digits ("\x1b4" became "¢"), so
the field was not left and the key typed a character there. The console binds no alt
key; only ESC + `[` `O` `]` `P` `_` `^` `\\` still start a terminal's sequences.

A terminal that does not bracket a paste (or tmux's paste-buffer without -p) delivers it
as keys, its line breaks as Enter: each line was sent as its own prompt. Typing lands in
one read too when the input thread was held up for a moment, or when keys come through a
lagging link or `tmux send-keys`: short prompts typed ahead, each with its Enter, are
meant to be sent one by one. So a read outside a bracketed paste is taken as a paste only
when it is clearly one: a line break with more after it, and either PASTE_CHARACTERS
characters or more (seconds of the fastest typing, all in one read) or PASTE_LINES lines
or more. Such a read, and the reads that follow it at once (a long paste's next
pieces), land in the box as lines, unsent. Anything smaller is keys, each Enter a send:
a two- or three-line paste of short lines from a terminal that brackets nothing is sent
line by line, the price of never holding back what was typed. Textual turns bracketed
paste on, and most terminals and tmux honour it: there every real paste is a `Paste`.
"""

from __future__ import annotations

import os
import re
import selectors
import sys
import time
from codecs import getincrementaldecoder
from collections.abc import Iterable

from textual import constants, events
from textual._loop import loop_last
from textual._parser import ParseError
from textual._xterm_parser import BRACKETED_PASTE_END, BRACKETED_PASTE_START, XTermParser
from textual.driver import Driver
from textual.message import Message

ESC = "\x1b"
ESC_PICTURE = "\u241b"  # ␛
SEQUENCE_STARTS = frozenset("[O]P_^\\")  # after ESC: CSI, SS3, OSC, DCS, APC, PM, ST — the terminal speaking
LINE_BREAK_THEN_MORE = re.compile(r"[\r\n].")  # in one read: a paste, or typing that bunched up
LINE_BREAK = re.compile(r"\r\n|[\r\n]")
PASTE_CHARACTERS = 64  # in one read with a line break inside: over 4 s of the fastest typing, so a paste
PASTE_LINES = 4  # lines in one read: four prompts typed ahead without a glance at the screen is not typing
PASTE_PIECES_WITHIN = 0.05  # seconds: a read this soon after an unbracketed paste is the paste's next piece


class PasteSafeParser(XTermParser):
    """`XTermParser`, with the ESCs inside a bracketed paste made visible before it reads them."""

    def __init__(self, debug: bool = False) -> None:
        super().__init__(debug)
        self._in_paste = False
        self._held = ""  # inside a paste: a tail that may be the start of the end marker, split across reads
        self._tail = ""  # outside a paste: the last few characters, for a start marker split across reads
        self._escape_at: float | None = None  # a lone ESC ending the last read (outside a paste), held since then
        self._unbracketed_at: float | None = None  # when the last read taken as an unbracketed paste came

    def feed(self, data: str) -> Iterable[Message]:
        if not data:
            held, self._held = self._held, ""
            if self._escape_at is not None:
                self._escape_at = None
                yield _escape_key()
            if held:
                yield from super().feed(held)
            yield from super().feed("")
            return
        if self._unbracketed_paste(data):
            yield events.Paste(data)
            return
        yield from self._split_escapes(self._guard(data))

    def _unbracketed_paste(self, data: str) -> bool:
        """Whether `data`, read outside a bracketed paste, is a paste the terminal did not bracket."""
        if self._in_paste or self._held or self._escape_at is not None or ESC in data:
            return False
        now = time.monotonic()
        following = self._unbracketed_at is not None and now - self._unbracketed_at < PASTE_PIECES_WITHIN
        if following or clearly_pasted(data):
            self._unbracketed_at = now
            self._tail = ""
            return True
        self._unbracketed_at = None
        return False

    def tick(self) -> Iterable[Message]:
        yield from super().tick()
        if self._escape_at is not None and time.monotonic() - self._escape_at >= constants.ESCAPE_DELAY:
            self._escape_at = None  # nothing followed it: the Escape key alone
            yield _escape_key()

    def _split_escapes(self, text: str) -> Iterable[Message]:
        """Feed `text` on, an ESC followed by a printable key sent as Escape and then that key."""
        if self._escape_at is not None:
            self._escape_at = None
            text = ESC + text
        start = 0
        for position, character in enumerate(text):
            if character != ESC:  # inside a paste every ESC but its end marker's is a ␛ by now
                continue
            following = text[position + 1:position + 2]
            if not following:
                yield from self._feed_some(text[start:position])
                self._escape_at = time.monotonic()  # what follows in the next read decides
                return
            if following.isprintable() and following not in SEQUENCE_STARTS:
                yield from self._feed_some(text[start:position])
                yield _escape_key()
                start = position + 1
        yield from self._feed_some(text[start:])

    def _feed_some(self, text: str) -> Iterable[Message]:
        if text:  # an empty feed is Textual's end of input
            yield from super().feed(text)

    def _guard(self, data: str) -> str:
        text, self._held = self._held + data, ""
        out: list[str] = []
        position = 0
        while position < len(text):
            if not self._in_paste:
                seen = self._tail + text[position:]
                start = seen.find(BRACKETED_PASTE_START)
                if start < 0:
                    out.append(text[position:])
                    self._tail = seen[-(len(BRACKETED_PASTE_START) - 1):]
                    break
                after = position + start - len(self._tail) + len(BRACKETED_PASTE_START)
                out.append(text[position:after])
                position, self._tail, self._in_paste = after, "", True
                continue
            end = text.find(BRACKETED_PASTE_END, position)
            if end >= 0:
                out.append(text[position:end].replace(ESC, ESC_PICTURE) + BRACKETED_PASTE_END)
                position, self._in_paste = end + len(BRACKETED_PASTE_END), False
                continue
            rest = text[position:]
            keep = _marker_prefix(rest, BRACKETED_PASTE_END)
            out.append(rest[:len(rest) - keep].replace(ESC, ESC_PICTURE))
            self._held = rest[len(rest) - keep:]
            break
        return "".join(out)


def clearly_pasted(data: str) -> bool:
    """Whether one read outside a bracketed paste is too much to be typing: lines, and more than a typist's burst."""
    if not LINE_BREAK_THEN_MORE.search(data):
        return False  # one line, with or without its Enter: typed, or pasted and meant to be sent alike
    lines = len(LINE_BREAK.findall(data)) + (not data.endswith(("\r", "\n")))  # the last one may lack its break
    return len(data) >= PASTE_CHARACTERS or lines >= PASTE_LINES


def _escape_key() -> events.Key:
    return events.Key("escape", ESC)


def _marker_prefix(text: str, marker: str) -> int:
    """The length of the longest end of `text` that is a proper start of `marker`."""
    for length in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-length:]):
            return length
    return 0


def paste_safe_driver() -> type[Driver] | None:
    """The Linux/macOS driver reading input through `PasteSafeParser`; None where Textual uses another.

    Another is Windows' own, or one named in TEXTUAL_DRIVER: textual-serve names its web driver there for each
    `medops serve` viewer, whose input comes from the browser as packets, not from a terminal."""
    if sys.platform == "win32" or os.environ.get("TEXTUAL_DRIVER"):
        return None
    from textual.drivers.linux_driver import LinuxDriver

    class PasteSafeDriver(LinuxDriver):
        """Textual's `LinuxDriver`, its input thread feeding `PasteSafeParser`."""

        def run_input_thread(self) -> None:
            # Textual's own loop (textual/drivers/linux_driver.py), with the parser swapped.
            selector = selectors.SelectSelector()
            selector.register(self.fileno, selectors.EVENT_READ)
            parser = PasteSafeParser(self._debug)
            decode = getincrementaldecoder("utf-8")().decode

            def process(selector_events: list[tuple[selectors.SelectorKey, int]], final: bool = False) -> None:
                for last, (_key, mask) in loop_last(selector_events):
                    if mask & selectors.EVENT_READ:
                        data = decode(os.read(self.fileno, 1024 * 4), final=final and last)
                        if not data:
                            break
                        for event in parser.feed(data):
                            self.process_message(event)
                for event in parser.tick():
                    self.process_message(event)

            try:
                while not self.exit_event.is_set():
                    process(selector.select(0.1))
                selector.unregister(self.fileno)
                process(selector.select(0.1), final=True)
            finally:
                selector.close()
                try:
                    for _event in parser.feed(""):
                        pass
                except (EOFError, ParseError):
                    pass

    return PasteSafeDriver
