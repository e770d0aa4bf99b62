"""`medops` in a real terminal: tmux for what a person sees, a bare pty for a dead tty."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from medops.core.settings.paths import Locations
from tests.helpers.redis_server import RedisServer
from tests.helpers.tmux import MEDOPS, Tmux
from tests.helpers.waiting import wait_for

GONE_WITHIN = 5.0  # "exits within a few seconds"

# Each test starts `medops` on a data folder that already holds the session's knowledge base.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
              pytest.mark.usefixtures("knowledge_ready")]


def process_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def tmux(locations: Locations) -> Iterator[Tmux]:
    server = Tmux(locations)
    try:
        yield server
    finally:
        server.kill()


def test_a_person_at_80x24_sees_the_panes_can_pause_and_the_process_dies_with_the_session(tmux: Tmux) -> None:
    pid = tmux.start(80, 24)
    assert wait_for(lambda: tmux.shows("Groq quota", "Overview", "Quit")), tmux.screen()
    assert wait_for(lambda: tmux.shows("live", "intake open")), tmux.screen()

    tmux.keys("Space")
    assert wait_for(lambda: tmux.shows("DISPLAY PAUSED")), tmux.screen()
    tmux.keys("i")
    assert wait_for(lambda: tmux.shows("INTAKE PAUSED")), tmux.screen()
    tmux.keys("F1")
    assert wait_for(lambda: tmux.shows("medops console — keys")), tmux.screen()
    tmux.keys("Escape")  # alone: escape then "2" at once reads as alt+2
    assert wait_for(lambda: not tmux.shows("medops console — keys")), tmux.screen()
    tmux.keys("2")
    assert wait_for(lambda: tmux.shows("CPU & memory")), tmux.screen()
    screen = tmux.screen().splitlines()
    assert len(screen) <= 24 and all(len(line) <= 80 for line in screen)

    tmux.run("kill-session", "-t", tmux.session)
    assert wait_for(lambda: process_gone(pid), GONE_WITHIN)


def test_a_closed_terminal_without_sighup_ends_the_console(locations: Locations) -> None:
    """A pty whose other end closes (no controlling tty, so no SIGHUP): medops must not spin."""
    master, slave = os.openpty()
    env = {**os.environ, "MEDOPS_DATA_DIR": str(locations.data_dir), "MEDOPS_CONFIG_DIR": str(locations.config_dir),
           "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    child = subprocess.Popen([str(MEDOPS)], stdin=slave, stdout=slave, stderr=slave, env=env,
                             start_new_session=True)
    os.close(slave)
    try:
        seen = b""

        def drawn() -> bool:
            nonlocal seen
            import select

            while select.select([master], [], [], 0.05)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    return False
            return b"Groq quota" in seen

        assert wait_for(drawn), seen[-500:]
        os.close(master)
        assert wait_for(lambda: child.poll() is not None, GONE_WITHIN)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


def test_eight_prompts_typed_one_after_another_are_eight_requests_and_a_paste_never_presses_keys(
        tmux: Tmux, tmp_path: Path) -> None:
    tmux.start(80, 24)
    assert wait_for(lambda: tmux.shows("Groq stand-in ok", "intake open")), tmux.screen()
    tmux.keys("3")
    assert wait_for(lambda: tmux.shows("prompt text")), tmux.screen()
    # Each prompt and its Enter in one write, the next as soon as the box has taken it. Lines read at once are
    # a paste now (see the unbracketed paste test below); the key-level race is test_console_typing's.
    for n in range(1, 9):
        tmux.keys(f"question {n}", "Enter")
        assert wait_for(lambda n=n: tmux.shows(f"#{n} triage")), tmux.screen()  # type: ignore[misc]
    assert wait_for(lambda: tmux.shows("#8 triage · normal") and "waiting" not in tmux.screen()
                    and "streaming" not in tmux.screen(), 30), tmux.screen()
    assert not tmux.shows("#9") and not tmux.shows("Type a prompt first"), tmux.screen()
    tmux.keys("Escape")
    time.sleep(0.2)  # escape and 6 at once read as alt+6
    tmux.keys("6")
    assert wait_for(lambda: tmux.shows("all 8 shown")), tmux.screen()  # the ledger has 8 requests
    tmux.keys("3")
    assert wait_for(lambda: tmux.shows("^s Send")), tmux.screen()  # the footer: the prompt box has the focus
    tmux.keys("Tab")
    assert wait_for(lambda: not tmux.shows("^s Send")), tmux.screen()

    hostile = tmp_path / "paste.txt"
    hostile.write_bytes(b"red \x1b[31mlt1\x1b[0m bell\x07\nsecond line \x1bl")
    tmux.run("load-buffer", "-b", "hostile", str(hostile))
    # the Send button now: a paste there went to the bindings before
    tmux.run("paste-buffer", "-p", "-b", "hostile", "-t", tmux.session)
    assert wait_for(lambda: tmux.shows("The paste went nowhere")), tmux.screen()
    assert not tmux.shows("Limits") or tmux.shows("prompt text"), tmux.screen()  # no Limits form opened
    tmux.keys("BTab")  # back in the prompt box
    assert wait_for(lambda: tmux.shows("^s Send")), tmux.screen()
    tmux.run("paste-buffer", "-p", "-b", "hostile", "-t", tmux.session)
    assert wait_for(lambda: tmux.shows("red ␛[31mlt1␛[0m bell␇", "second line ␛l")), tmux.screen()


def test_no_color_draws_in_the_terminals_own_colours_on_every_tab(tmux: Tmux) -> None:
    tmux.start(80, 24, NO_COLOR="1")
    assert wait_for(lambda: tmux.shows("Groq stand-in ok", "intake open")), tmux.screen()
    for key in ("1", "2", "3", "Escape", "4", "Escape", "5", "Escape", "6", "F1"):
        tmux.keys(key)
        time.sleep(0.5)
        assert tmux.colours() == set(), (key, tmux.colours())  # before: 38;5;16 on 48;5;16, black on black


def test_the_contrast_theme_uses_no_fixed_white_or_black(tmux: Tmux) -> None:
    """On a light terminal white text vanishes, on a dark one black: only the terminal's own, and red for errors."""
    tmux.start(80, 24, MEDOPS_THEME="medops-contrast")
    assert wait_for(lambda: tmux.shows("Groq stand-in ok", "intake open")), tmux.screen()
    for key in ("1", "2", "3", "Escape", "4", "Escape", "5", "Escape", "6", "F1", "Escape", "l"):
        tmux.keys(key)
        time.sleep(0.5)
        assert tmux.colours() <= {"31", "41"}, (key, tmux.colours())


def test_attach_over_a_hostile_store_sends_no_escape_from_it_to_the_terminal_and_shows_it_as_text(
        tmux: Tmux, redis_server: RedisServer, tmp_path: Path) -> None:
    """Alert texts, member names and stream fields carrying OSC 52 (clipboard), OSC 0 (title), OSC 8 (links)
    and Textual markup, read by `medops --attach`: the bytes medops writes to its terminal hold none of them."""
    from tests.helpers.hostile_store import MARKUP, OSC8, OSC52, plant, plant_streams

    title = "\x1b]0;PWNED\x07"
    plant(redis_server.url)
    plant_streams(redis_server.url)
    store = redis.Redis.from_url(redis_server.url)
    hostile_alert = {"name": "cpu", "level": "critical", "message": f"{title}{OSC52}{OSC8}{MARKUP}",
                     "opened_at": time.time(), "updated_at": time.time()}
    snap = json.loads(store.get("medops:{test}:snap:good-1") or b"{}")
    store.set("medops:{test}:snap:good-1", json.dumps({**snap, "taken_at": time.time(), "alerts": [hostile_alert]}),
              px=600_000)
    store.xadd("medops:{test}:alerts", {"instance": "good-1", "alert": json.dumps(hostile_alert)})
    store.close()
    raw = tmp_path / "raw.bin"
    pid = tmux.start(160, 48, "--attach", raw=raw, MEDOPS_STORE_URL=redis_server.url, MEDOPS_STORE_NAMESPACE="test")
    assert wait_for(lambda: tmux.shows("attached"), 30), tmux.screen()
    assert wait_for(lambda: tmux.shows("␛]52;c;SGVsbG8=␇"), 20), tmux.screen()  # the alert's text, as text
    tmux.keys("7")  # Fleet: the members' hostile names
    assert wait_for(lambda: tmux.shows("malformed member entries skipped", "?'[@click"), 20), tmux.screen()
    tmux.keys("6")  # History: the fleet's streams, bad entries counted
    assert wait_for(lambda: tmux.shows("could not be read"), 20), tmux.screen()
    tmux.keys("Tab")
    time.sleep(1.0)
    assert not process_gone(pid), "the console died"
    written = raw.read_bytes()
    assert len(written) > 1_000  # the pipe saw the screens drawn
    for payload in (b"\x1b]52", b"\x1b]0;", b"\x1b]8;", b"\xc2\x9d"):  # ESC ] and the C1 form of OSC
        assert payload not in written, payload
    assert "␛]52;c;SGVsbG8=␇".encode() in written  # written as text
    # Every operating-system command written is Textual's own pointer shape (OSC 22), nothing from the store.
    osc = set(re.findall(rb"\x1b\]([0-9]*);", written))
    assert osc <= {b"22"}, osc
    assert "INTAKE PAUSED" not in tmux.screen()


def test_escape_and_a_digit_in_one_write_leave_the_field_and_change_the_tab(tmux: Tmux) -> None:
    """As an SSH link delivers them: ESC and "4" in one write were one alt key, and typed "¢" in the box."""
    tmux.start(80, 24)
    assert wait_for(lambda: tmux.shows("Groq stand-in ok", "intake open")), tmux.screen()
    tmux.keys("3")
    assert wait_for(lambda: tmux.shows("^s Send")), tmux.screen()
    tmux.keys("abc")
    assert wait_for(lambda: tmux.shows("abc")), tmux.screen()
    tmux.keys("-H", "1b", "34")  # both bytes in one write
    assert wait_for(lambda: tmux.shows("path of a PDF")), tmux.screen()  # the Document tab, its path focused
    tmux.keys("-H", "1b", "33")  # and back, from the path field
    assert wait_for(lambda: tmux.shows("^s Send")), tmux.screen()
    assert "£" not in tmux.screen() and "¢" not in tmux.screen() and tmux.shows("abc"), tmux.screen()


def test_a_paste_without_bracketed_paste_lands_in_the_prompt_box_as_lines(tmux: Tmux, tmp_path: Path) -> None:
    """A terminal that does not bracket a paste delivers its line breaks as Enter: each line was its own prompt."""
    tmux.start(80, 24)
    assert wait_for(lambda: tmux.shows("Groq stand-in ok", "intake open")), tmux.screen()
    tmux.keys("3")
    assert wait_for(lambda: tmux.shows("^s Send")), tmux.screen()
    note = tmp_path / "note.txt"
    note.write_text("64M, chest pain since noon radiating to the left arm\nno fever, BP 150/95, HR 104\n"
                    "ECG: ST up in II, III\n")
    tmux.run("load-buffer", "-b", "note", str(note))
    tmux.run("paste-buffer", "-b", "note", "-t", tmux.session)  # no -p: the lines arrive as typed keys
    assert wait_for(lambda: tmux.shows("radiating to the left arm", "no fever", "ST up in II")), tmux.screen()
    time.sleep(1.0)
    assert not tmux.shows("#1 triage"), tmux.screen()  # nothing sent
    tmux.keys("Enter")
    assert wait_for(lambda: tmux.shows("#1 triage")), tmux.screen()
    assert not tmux.shows("#2 triage"), tmux.screen()  # the three lines are one prompt


def test_short_prompts_typed_ahead_in_one_write_are_each_sent(tmux: Tmux) -> None:
    """Three prompts and their Enters in one write (typed ahead, or `tmux send-keys`): three requests, as typed.
    Before, any line break with more after it in one read was a paste: all three sat unsent in the box."""
    tmux.start(80, 24)
    assert wait_for(lambda: tmux.shows("Groq stand-in ok", "intake open")), tmux.screen()
    tmux.keys("3")
    assert wait_for(lambda: tmux.shows("^s Send")), tmux.screen()
    tmux.keys("-l", "question 1\rquestion 2\rquestion 3\r")  # one write
    assert wait_for(lambda: tmux.shows("#3 triage"), 30), tmux.screen()
    assert wait_for(lambda: "waiting" not in tmux.screen() and "streaming" not in tmux.screen(), 30), tmux.screen()
    assert not tmux.shows("#4") and not tmux.shows("question 1 question 2"), tmux.screen()


def stray_borders(screen: str) -> list[tuple[int, int]]:
    """Cells of a side border that belong to no pane: right under a pane's bottom corner, or right over a top one."""
    rows = screen.split("\n")

    def at(row: int, column: int) -> str:
        return rows[row][column] if 0 <= row < len(rows) and column < len(rows[row]) else " "

    return [(row, column) for row, line in enumerate(rows) for column, character in enumerate(line)
            if character == "│" and (at(row - 1, column) in "╰╯└┘" or at(row + 1, column) in "╭╮┌┐")]


@pytest.mark.parametrize("size", [(160, 48), (80, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_no_stray_border_on_the_overview_or_any_tab(tmux: Tmux, size: tuple[int, int]) -> None:
    """Reported at 160x48: a row of the Pools pane's side borders stayed under it once the first snapshot drew
    the panes (Textual missed repainting what the pane left)."""
    tmux.start(*size, NO_COLOR="1")
    assert wait_for(lambda: tmux.shows("Groq stand-in ok", "intake open")), tmux.screen()
    time.sleep(2.0)  # a few snapshots drawn
    assert stray_borders(tmux.screen()) == [], tmux.screen()
    for key in ("2", "3", "Escape", "4", "Escape", "5", "Escape", "6", "7", "8", "1", "F1"):
        tmux.keys(key)
        time.sleep(0.5)
        assert stray_borders(tmux.screen()) == [], (key, tmux.screen())


@pytest.mark.parametrize(("tab", "ready", "last"), [("3", "^s Send", "X"), ("4", "path of a PDF", "Y")],
                         ids=["prompt box", "one-line field"])
def test_backspace_and_the_next_key_in_one_write_are_both_keys(tmux: Tmux, tab: str, ready: str, last: str) -> None:
    """Over SSH Backspace and the next key come in one read: the key after a Backspace was lost."""
    tmux.start(80, 24)
    assert wait_for(lambda: tmux.shows("Groq stand-in ok", "intake open")), tmux.screen()
    tmux.keys(tab)
    assert wait_for(lambda: tmux.shows(ready)), tmux.screen()
    tmux.keys("-l", "abcde")
    assert wait_for(lambda: tmux.shows("abcde")), tmux.screen()
    tmux.keys("-H", "7f", "58")  # Backspace and X in one write
    assert wait_for(lambda: tmux.shows("abcdX")), tmux.screen()
    tmux.keys("BSpace", "BSpace", last)
    assert wait_for(lambda: tmux.shows(f"abc{last}")), tmux.screen()
    time.sleep(0.3)
    assert not tmux.shows(f"abc{last}X") and not tmux.shows("abcdX"), tmux.screen()


def test_a_refused_limit_cleared_and_retyped_in_one_write_applies_the_value_typed(tmux: Tmux) -> None:
    """99999 refused, then five Backspaces, "3" and Enter in one write: "io_threads: 8 → 9 (applied now)" before,
    a value never typed (the "3" went in before the Backspaces acted, and they ate it and four 9s)."""
    tmux.start(80, 24)
    assert wait_for(lambda: tmux.shows("Groq stand-in ok", "intake open")), tmux.screen()
    tmux.keys("l")
    assert wait_for(lambda: tmux.shows("Change a limit")), tmux.screen()
    tmux.keys("-l", "io_threads")
    tmux.keys("Enter")
    tmux.keys("-l", "99999")
    tmux.keys("Enter")
    assert wait_for(lambda: "applied now" not in tmux.screen() and tmux.shows("99999", "io_threads")), tmux.screen()
    time.sleep(0.5)
    assert "applied now" not in tmux.screen(), tmux.screen()  # refused
    tmux.keys("-l", "\x7f" * 5 + "3\r")  # one write
    assert wait_for(lambda: tmux.shows("applied now")), tmux.screen()
    assert re.search(r"io_threads: \d+ → 3 \(applied now\)", tmux.screen()), tmux.screen()


def test_names_typed_ahead_in_the_document_path_are_each_a_job_and_a_pasted_list_waits_for_enter(
        tmux: Tmux, tmp_path: Path) -> None:
    """Typed at tmux speed, "good.pdf⏎nope.pdf⏎big.pdf⏎" in one write became one refused name before (and one Enter
    went without a ␊ mark); a list pasted where the terminal brackets nothing must neither act nor lose a line."""
    intake = tmux.locations.default_intake_dir
    intake.mkdir(parents=True, exist_ok=True)
    for name in ("good.pdf", "big.pdf"):
        (intake / name).write_bytes(b"%PDF-1.4\n")  # taken up, then failed as unreadable: a job all the same
    tmux.start(160, 48)
    assert wait_for(lambda: tmux.shows("Groq stand-in ok", "intake open")), tmux.screen()
    tmux.keys("4")
    assert wait_for(lambda: tmux.shows("path of a PDF")), tmux.screen()
    tmux.keys("-l", "good.pdf\rnope.pdf\rbig.pdf\r")  # one write
    assert wait_for(lambda: tmux.shows("good.pdf failed", "big.pdf failed", "refused nope.pdf"), 30), tmux.screen()
    assert not tmux.shows("␊"), tmux.screen()
    names = tmp_path / "names.txt"
    names.write_text("scan-1.pdf\nscan-2.pdf\nscan-3.pdf\nscan-4.pdf\n")
    tmux.run("load-buffer", "-b", "names", str(names))
    tmux.run("paste-buffer", "-b", "names", "-t", tmux.session)  # no -p: the lines arrive as typed keys
    assert wait_for(lambda: tmux.shows("scan-1.pdf␊scan-2.pdf␊scan-3.pdf␊scan-4.pdf")), tmux.screen()
    time.sleep(1.0)
    assert not tmux.shows("refused scan-"), tmux.screen()  # nothing taken up yet
    tmux.keys("Enter")
    assert wait_for(lambda: all(tmux.shows(f"refused scan-{n}.pdf") for n in range(1, 5)), 30), tmux.screen()
