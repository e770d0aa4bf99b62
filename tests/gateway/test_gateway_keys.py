"""Agent keys for the gateway: made, listed, revoked and found, in the data folder and in a real redis-server."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator, Callable

import pytest

from medops.core.clock import FakeClock
from medops.core.gateway.key_book import open_key_book
from medops.core.gateway.key_file import FileKeyBook
from medops.core.gateway.keys import FRESH_FOR, AgentKey, KeyBook, KeyBookError, digest, new_key, new_secret
from medops.core.groq.requests import Priority
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.redis_server import RedisServer

BookMaker = Callable[[], KeyBook]


@pytest.fixture(params=["data folder", "store"])
async def books(request: pytest.FixtureRequest, locations: Locations, clock: FakeClock,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BookMaker]:
    """Makes books on one data folder, or one redis-server: each one a gateway (or a key command) of its own."""
    server: RedisServer | None = None
    settings = Settings()
    if request.param == "store":
        server = RedisServer(tmp_path_factory.mktemp("redis"))
        server.start()
        settings = Settings(store_url=server.url)
    made: list[KeyBook] = []

    def make() -> KeyBook:
        book = open_key_book(settings, locations, clock, {}, budget=2.0)
        made.append(book)
        return book
    try:
        yield make
    finally:
        for book in made:
            await book.close()
        if server is not None:
            server.stop()


def triage(name: str = "triage-bot") -> tuple[str, AgentKey]:
    secret = new_secret()
    return secret, new_key(name, "triage", "high", "critical", ["llama-3.1-8b-instant"], 1_767_225_600.0)


async def test_a_key_added_is_listed_and_found_by_its_secret_only(books: BookMaker) -> None:
    book = books()
    secret, key = triage()
    await book.add(key, digest(secret))
    (listed,) = await book.keys()
    assert (listed.name, listed.agent, listed.priority, listed.max_priority, listed.models) == (
        "triage-bot", "triage", Priority.HIGH, Priority.CRITICAL, ("llama-3.1-8b-instant",))
    assert listed.last_used is None
    assert await book.find(digest(secret)) == listed
    assert await book.find(digest(new_secret())) is None


async def test_a_name_is_taken_once(books: BookMaker) -> None:
    book = books()
    secret, key = triage()
    await book.add(key, digest(secret))
    with pytest.raises(KeyBookError, match="exists; revoke it first"):
        await book.add(key, digest(new_secret()))


async def test_a_key_revoked_by_one_book_is_refused_by_another_within_a_second(
        books: BookMaker, clock: FakeClock) -> None:
    gateway, command = books(), books()
    secret, key = triage()
    await command.add(key, digest(secret))
    assert await gateway.find(digest(secret)) is not None  # now in the gateway's memory
    assert await command.revoke("triage-bot")
    await clock.advance(FRESH_FOR)
    assert await gateway.find(digest(secret)) is None
    assert not await command.revoke("triage-bot")
    assert await command.keys() == ()


async def test_last_use_is_written_in_batches_and_never_brings_a_revoked_key_back(
        books: BookMaker, clock: FakeClock) -> None:
    gateway, command = books(), books()
    secret, key = triage()
    other_secret, other = triage("docs-bot")
    await command.add(key, digest(secret))
    await command.add(other, digest(other_secret))
    await gateway.find(digest(secret))
    gateway.touch("triage-bot", 1_767_230_000.0)
    gateway.touch("docs-bot", 1_767_230_001.0)
    assert all(k.last_used is None for k in await command.keys())  # not yet: batched
    await command.revoke("docs-bot")
    await gateway.flush()
    assert [(k.name, k.last_used) for k in await command.keys()] == [("triage-bot", 1_767_230_000.0)]


async def test_the_data_folder_keeps_digests_only_in_a_file_only_its_owner_reads(
        locations: Locations, clock: FakeClock) -> None:
    book = FileKeyBook(locations.data_dir, clock)
    secret, key = triage()
    await book.add(key, digest(secret))
    text = book.path.read_text()
    assert secret not in text and secret[4:] not in text
    assert stat.S_IMODE(book.path.stat().st_mode) == 0o600


def test_a_key_must_name_a_known_agent_and_a_default_within_its_maximum() -> None:
    with pytest.raises(KeyBookError, match="--agent must be one of"):
        new_key("bot", "janitor", "normal", None, [], 0.0)
    with pytest.raises(KeyBookError, match="below --priority"):
        new_key("bot", "triage", "critical", "normal", [], 0.0)
    with pytest.raises(KeyBookError, match="name is 1 to 48"):
        new_key("Jane Doe MRN 1234", "triage", "normal", None, [], 0.0)
    assert new_key("bot", "triage", "high", None, [], 0.0).max_priority is Priority.HIGH
