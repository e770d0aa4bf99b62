"""Keys sent to a Textual app back to back, as a fast typist or a terminal's paste delivers them."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.app import App


def type_fast(app: App[Any], keys: list[str]) -> None:
    """Every key into the driver back to back, as a fast typist or a terminal's paste delivers them.

    Pilot's `press` waits for the app to settle after each key, which hides exactly the race
    this file is about; here nothing waits until all keys are in.
    """
    assert app._driver is not None
    for key in keys:
        character = {"enter": "\r", "space": " "}.get(key, key if len(key) == 1 else None)
        event = events.Key(key, character)
        event.set_sender(app)
        app._driver.send_message(event)


def keys_for(text: str) -> list[str]:
    return ["space" if c == " " else c for c in text]
