"""What a paste may put in a text box: control characters become visible symbols.

A paste is text. An escape sequence, a bell or a backspace inside it must neither act
(move the cursor, switch a theme) nor vanish: each becomes its Unicode control picture
(␛ ␇ ␈ …), so what the box shows is what will be sent, and the user can delete it.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

DEL = 0x7F
PICTURE_BASE = 0x2400  # U+2400 "␀" starts the control pictures, in code order
DEL_PICTURE = "\u2421"  # ␡
ESC_PICTURE = "\u241b"  # ␛: the terminal input turns a paste's ESCs into it before any box sees them
LINE_PICTURE = "\u240a"  # ␊: a paste's line break in a one-line box


@dataclass(frozen=True)
class CleanPaste:
    """The pasted text with its control characters made visible, and which ones there were."""

    text: str
    shown: tuple[str, ...]  # the pictures that replaced control characters, each once, in order seen


def picture(character: str) -> str:
    """The control picture for one control character (␛ for ESC)."""
    code = ord(character)
    return DEL_PICTURE if code == DEL else chr(PICTURE_BASE + code)


def clean_paste(text: str, *, keep: str = "") -> CleanPaste:
    """`text` with every C0 control and DEL shown as its picture, except those in `keep` (e.g. newline)."""
    out: list[str] = []
    shown: list[str] = []
    # a terminal's paste ends its lines with CR (tmux, most emulators): a line break all the same
    for character in text.replace("\r\n", "\n").replace("\r", "\n"):
        code = ord(character)
        if character == ESC_PICTURE and character not in shown:
            shown.append(character)
        if (code < 0x20 or code == DEL) and character not in keep:
            symbol = picture(character)
            out.append(symbol)
            if symbol not in shown:
                shown.append(symbol)
        else:
            out.append(character)
    return CleanPaste("".join(out), tuple(shown))


class PasteHadControls(Message):
    """A box shows control characters from a paste as symbols; the app says so once per paste."""

    def __init__(self, shown: tuple[str, ...]) -> None:
        super().__init__()
        self.shown = shown

    def explanation(self) -> str:
        """What happened and what to do, for a notification."""
        return (f"The paste held control characters, now shown as {' '.join(self.shown)} in the box; none of"
                " them acted. They are sent as shown: delete them first if they do not belong.")


class PastedLines(Message):
    """A one-line box that takes one entry per line was pasted `count` lines, shown apart by ␊."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count
