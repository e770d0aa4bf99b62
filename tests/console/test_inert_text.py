"""Text from outside is inert: markup stays text in the console, control characters are shown, never sent."""

from __future__ import annotations

import io

import pytest
from textual.markup import to_content

from medops.console import figures
from medops.console.inert_output import InertStream
from medops.core.inert_text import name, visible

HOSTILE = ("[@click=app.toggle_intake]ACK-ME[/]", "x[/", "[$error]red", "[B]bold", "a\\", "a\\[b]",
           "\x1b]52;c;SGVsbG8=\x07", "\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\", "\x9b31m")


@pytest.mark.parametrize("value", HOSTILE)
def test_a_value_dropped_into_markup_reads_as_itself_and_the_tags_around_it_still_work(value: str) -> None:
    content = to_content(f"[b]{figures.text(value)}[/] [dim]after[/]")
    assert content.plain.replace("\u200b", "") == f"{visible(value, keep_lines=True)} after"
    assert not any("click" in str(span.style) for span in content.spans)
    assert [str(span.style) for span in content.spans] == ["b", "dim"]


def test_control_characters_are_shown_as_pictures_or_escapes_never_sent() -> None:
    shown = visible("\x1b]52;c;SGVsbG8=\x07 \x9b2J \u202e")
    assert shown == "\u241b]52;c;SGVsbG8=\u2407 \\x9b2J \\u202e"
    assert visible("two\nlines", keep_lines=True) == "two\nlines"
    assert visible("two\nlines") == "two\u240alines"


def test_a_name_that_fails_the_pattern_is_quoted_escaped_and_cut() -> None:
    assert name("llama-3.1-8b-instant") == "llama-3.1-8b-instant"
    assert name("meta-llama/llama-4-scout") == "meta-llama/llama-4-scout"
    assert name("x[/") == "?'x[/'"
    assert name("\x1b]0;title\x07") == "?'\\x1b]0;title\\x07'"
    assert len(name("y" * 5_000)) < 80


def test_the_clis_streams_show_control_characters_and_keep_lines() -> None:
    out = io.StringIO()
    stream = InertStream(out)  # type: ignore[arg-type]
    print("model \x1b]52;c;SGVsbG8=\x07\nnext", file=stream)  # type: ignore[arg-type]
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    assert out.getvalue() == "model \u241b]52;c;SGVsbG8=\u2407\nnext\n"
