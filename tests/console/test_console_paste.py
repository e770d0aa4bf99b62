"""A paste is text: it never presses keys, its control characters show as symbols, its lines stay lines."""

from __future__ import annotations

from textual import events

from medops.console.app import MedopsApp
from medops.console.forms.pasted import clean_paste
from medops.console.forms.prompt import PromptForm
from medops.console.terminal_input import PasteSafeParser
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.console_data import FrozenCore
from tests.helpers.waiting import until

START, END = "\x1b[200~", "\x1b[201~"
# What the issue pasted: colour codes, a bell, a backspace, a newline, and keys medops binds (l, t, 1).
HOSTILE = "red \x1b[31mlt1\x1b[0m bell\x07 back\x08\nsecond line \x1bl"


def parsed(chunks: list[str]) -> list[object]:
    parser = PasteSafeParser()
    return [event for chunk in chunks for event in parser.feed(chunk)]


def test_a_bracketed_paste_with_escape_sequences_is_one_paste_and_no_keys() -> None:
    events_seen = parsed([START + HOSTILE + END])
    assert [type(e) for e in events_seen] == [events.Paste]
    paste = events_seen[0]
    assert isinstance(paste, events.Paste)
    assert paste.text == HOSTILE.replace("\x1b", "␛")


def test_the_paste_markers_may_be_split_across_reads() -> None:
    whole = START + HOSTILE + END + "q"
    for cut in range(1, len(whole)):
        events_seen = parsed([whole[:cut], whole[cut:]])
        pastes = [e for e in events_seen if isinstance(e, events.Paste)]
        keys = [e.key for e in events_seen if isinstance(e, events.Key)]
        assert len(pastes) == 1 and pastes[0].text == HOSTILE.replace("\x1b", "␛"), cut
        assert keys == ["q"], cut  # typed after the paste: a key again


def test_typed_keys_outside_a_paste_are_keys() -> None:
    keys = [e.key for e in parsed(["l", "t", "\x1b[A"]) if isinstance(e, events.Key)]
    assert keys == ["l", "t", "up"]


def test_control_characters_become_their_pictures_and_lines_can_stay() -> None:
    cleaned = clean_paste("a\x07b\x08c\rd\x7f", keep="\n")  # CR: a terminal's line end
    assert cleaned.text == "a␇b␈c\nd␡"
    assert cleaned.shown == ("␇", "␈", "␡")


async def test_a_paste_into_the_prompt_box_stays_multiline_and_is_sent_whole(locations: Locations) -> None:
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("3")
        theme = app.theme
        app.post_message(events.Paste(HOSTILE.replace("\x1b", "␛")))
        await pilot.pause()
        box = app.query_one(PromptForm).box_text()
        assert box == "red ␛[31mlt1␛[0m bell␇ back␈\nsecond line ␛l"
        assert app.theme == theme and len(app.screen_stack) == 1  # nothing acted
        assert any("control characters" in str(n.message) for n in app._notifications)


async def test_a_paste_with_no_text_box_focused_says_it_went_nowhere(locations: Locations) -> None:
    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("3")
        app.query_one("#prompt-send").focus()
        await pilot.pause()
        app.post_message(events.Paste("lt1 "))  # as the driver delivers it: to the app, which forwards it
        await pilot.pause()
        assert app.theme and len(app.screen_stack) == 1
        assert any("went nowhere" in str(n.message) for n in app._notifications)


def test_escape_and_a_key_in_one_read_are_escape_then_that_key() -> None:
    """An SSH link delivers Escape and the next key together: not "¢" (alt+4), but Escape, then 4."""
    keys = [e.key for e in parsed(["\x1b4", "\x1b1abc", "\x1bq"]) if isinstance(e, events.Key)]
    assert keys == ["escape", "4", "escape", "1", "a", "b", "c", "escape", "q"]


def test_an_escape_ending_one_read_joins_the_key_in_the_next() -> None:
    keys = [e.key for e in parsed(["x\x1b", "4", "\x1b", "[A"]) if isinstance(e, events.Key)]
    assert keys == ["x", "escape", "4", "up"]


NOTE = "64M, chest pain since noon radiating to the left arm\rno fever, BP 150/95, HR 104\rECG: ST up in II, III\r"


def test_lines_in_one_read_outside_a_bracketed_paste_are_one_paste() -> None:
    # A terminal without bracketed paste (or tmux's paste-buffer without -p) delivers a paste as keys: each line
    # break was Enter, and each line was sent as its own prompt.
    events_seen = parsed([NOTE])
    assert [type(e) for e in events_seen] == [events.Paste]
    paste = events_seen[0]
    assert isinstance(paste, events.Paste) and paste.text == NOTE


def test_four_short_lines_in_one_read_are_one_paste() -> None:
    events_seen = parsed(["BP 150/95\rHR 104\rT 37.2\rSpO2 97%"])
    assert [type(e) for e in events_seen] == [events.Paste]


def test_short_prompts_typed_ahead_in_one_read_are_keys_each_enter_a_send() -> None:
    """Typed while the input thread was held up, or through `tmux send-keys`: each prompt is meant to be sent."""
    keys = [e.key for e in parsed(["question 1\rquestion 2\rquestion 3\r"]) if isinstance(e, events.Key)]
    assert keys.count("enter") == 3 and "".join(k for k in keys if len(k) == 1) == "question1question2question3"


def test_a_line_and_its_enter_in_one_read_are_keys() -> None:
    keys = [e.key for e in parsed(["abc\r"]) if isinstance(e, events.Key)]
    assert keys == ["a", "b", "c", "enter"]


async def test_a_list_of_names_pasted_in_the_document_path_waits_there_and_enter_takes_up_each(
        locations: Locations) -> None:
    """Before, the list became one name "good.pdf␊nope.pdf␊big.pdf", refused as no such file."""
    from textual.widgets import Input

    from medops.console.forms.document import DocumentForm

    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("4")
        form = app.query_one(DocumentForm)
        path = app.query_one("#doc-path", Input)
        app.post_message(events.Paste("good.pdf\r\nnope.pdf\n\nbig.pdf\n"))
        assert await until(pilot, lambda: path.value == "good.pdf␊nope.pdf␊␊big.pdf"), path.value
        await pilot.pause(0.2)
        assert form.started == []  # the paste did not act
        notes = [str(n.message) for n in app._notifications]
        assert any("4 lines pasted into the path" in note for note in notes), notes
        assert not any("control characters" in note for note in notes), notes
        await pilot.press("enter")
        assert await until(pilot, lambda: len(form.started) == 3 and not form.running, within=30)
        assert form.started == ["good.pdf", "nope.pdf", "big.pdf"]
        assert path.value == ""


async def test_lines_pasted_in_a_one_line_field_all_stay_there(locations: Locations) -> None:
    """Textual's Input kept the first line of a paste and dropped the rest without a word."""
    from textual.widgets import Input

    app = MedopsApp(Settings(refresh_interval=60.0), locations, core=FrozenCore())  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: app.core_started)
        await pilot.press("5")
        field = app.query_one("#search-text", Input)
        assert await until(pilot, lambda: field.has_focus)
        app.post_message(events.Paste("chest pain\nfever"))
        assert await until(pilot, lambda: field.value == "chest pain␊fever"), field.value
        assert any("control characters" in str(n.message) for n in app._notifications)
