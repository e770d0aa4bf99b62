"""The fleet's roles as Redis ACL users on a real redis-server: each may do what its role needs, nothing more."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as redis
from redis.exceptions import NoPermissionError

from medops.console.cli import main
from medops.console.fleet_access import store_issuer, store_limit_setter
from medops.core.clock import FakeClock, SystemClock
from medops.core.errors import ConfigError
from medops.core.fleet.acl import StoreUser, apply_users, new_users, setuser_args, setuser_line
from medops.core.fleet.attached import AttachedFleet
from medops.core.fleet.clear import clear_model
from medops.core.fleet.commands import Command, CommandInbox, issue
from medops.core.fleet.history import read_heads, read_requests
from medops.core.fleet.shared_settings import read_fleet_settings, read_settings
from medops.core.fleet.shared_settings import unset as unset_setting
from medops.core.fleet.store import QuotaStore, StoreUnavailable
from medops.core.fleet.view import FleetUnavailable, read_fleet
from medops.core.fleet.wire import AdmitArgs, LegacyWire, Wire
from medops.core.gateway.key_book import open_key_book
from medops.core.gateway.keys import KeyBook, KeyBookError, digest, new_key, new_secret
from medops.core.groq.quota import Reservation
from medops.core.settings.config import ModelLimits, Settings, load_settings
from medops.core.settings.paths import Locations
from tests.helpers.fleet_helpers import MODEL, admit, fleet_cores, member
from tests.helpers.redis_server import RedisServer
from tests.helpers.store_users import NAMES, PASSWORDS, as_user

LIMITS = ModelLimits(rpm=30, rpd=1_000, tpm=10_000, tpd=1_000_000)


@pytest.fixture
async def acl_store(redis_server: RedisServer) -> AsyncIterator[RedisServer]:
    """The test store with the fleet's users on namespace "test" and the library loaded, as its admin would."""
    await apply_users(redis_server.url, None, "test", new_users(NAMES, PASSWORDS))
    yield redis_server


async def test_members_run_the_quota_as_the_member_user(acl_store: RedisServer) -> None:
    async with member(as_user(acl_store.url, "member"), LIMITS, "a") as a:
        assert isinstance(await admit(a, 10), Reservation)


async def test_a_member_user_cannot_load_the_library_and_says_who_must(redis_server: RedisServer) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    await admin.execute_command(*setuser_args(StoreUser(NAMES["member"], "member", PASSWORDS["member"]), "test"))
    await admin.aclose()  # the users, but no library: nobody ran `medops fleet acl --apply`
    store = QuotaStore(as_user(redis_server.url, "member"), "test", SystemClock(), budget=2.0)
    try:
        with pytest.raises(StoreUnavailable, match="may not load it: have the store's admin run `medops fleet acl"):
            await store.call(Wire("test").leave("a"))
    finally:
        await store.close()


async def test_a_member_cannot_touch_another_namespace_nor_send_commands(acl_store: RedisServer) -> None:
    admin = redis.Redis.from_url(acl_store.url, decode_responses=True)
    await admin.set("medops:other:members", "theirs")
    client = redis.Redis.from_url(as_user(acl_store.url, "member"), decode_responses=True)
    try:
        with pytest.raises(NoPermissionError):
            await client.delete("medops:other:members")
        for wire in (Wire("other"), LegacyWire("other")):  # nor through either library, naming its keys
            call = wire.leave("x")
            with pytest.raises(NoPermissionError):
                await client.fcall(call.function, len(call.keys), *call.keys, *call.args)  # type: ignore[no-untyped-call]
        with pytest.raises(NoPermissionError):
            await client.xadd("medops:{test}:commands", {"command": "{}"})
        with pytest.raises(NoPermissionError):
            await client.function_load("#!lua name=evil\nredis.register_function('evil', function() return 1 end)")
        assert await admin.get("medops:other:members") == "theirs"
    finally:
        await client.aclose()
        await admin.aclose()


async def test_a_reader_cannot_add_a_command_or_call_admit(acl_store: RedisServer) -> None:
    url = as_user(acl_store.url, "reader")
    async with member(as_user(acl_store.url, "member"), LIMITS, "a"):
        assert [m.instance for m in (await read_fleet(url, "test")).members] == ["a"]
        with pytest.raises(FleetUnavailable, match="may not send commands to the fleet: set store_user"):
            await issue(url, "test", "pause", "*", wait=0.5)
        client = redis.Redis.from_url(url, decode_responses=True)
        try:
            with pytest.raises(NoPermissionError):
                call = Wire("test").admit(MODEL, AdmitArgs("r", "r:1", 1, 0, 0, (30, 1000, 10_000, 1_000_000),
                                                           180_000, 30_000, 2_000, ""))
                await client.fcall(call.function, len(call.keys), *call.keys, *call.args)  # type: ignore[no-untyped-call]
            assert await client.xlen("medops:{test}:commands") == 0
        finally:
            await client.aclose()
        with pytest.raises(FleetUnavailable, match="operator user"):
            await clear_model(url, "test", MODEL)


async def test_an_attached_read_only_console_needs_only_the_reader(acl_store: RedisServer) -> None:
    settings = Settings(store_url=as_user(acl_store.url, "reader"), store_namespace="test")
    async with member(as_user(acl_store.url, "member"), LIMITS, "a"):
        attached = AttachedFleet(settings, env={})
        await attached.start()
        try:
            assert [m.instance for m in (await attached.fleet_view()).members] == ["a"]
        finally:
            await attached.stop()
        await read_requests(settings.store_url, "test", limit=10)
        await read_heads(settings.store_url, "test", None)


async def test_the_recorded_operator_is_the_acl_user(acl_store: RedisServer, tmp_path: Path,
                                                     built_knowledge: Path) -> None:
    async with fleet_cores(as_user(acl_store.url, "member"), tmp_path, built_knowledge, ("ward",)) as cores:
        fleet = cores[0]._fleet
        assert fleet is not None
        for _ in range(50):  # its command inbox opens at its first beat; commands before that are not its
            if fleet._inbox is not None:
                break
            await asyncio.sleep(0.1)
        command, acks = await issue(as_user(acl_store.url, "operator"), "test", "set_limit", "*",
                                    "groq_concurrent", "3", wait=5.0)
        assert command.store_user == "medops-operator"
        assert [a.status for a in acks] == ["applied"]
        change = (await cores[0].limit_change_history()).changes[0]
        assert change.by.startswith("store user medops-operator, ") and change.by.endswith("(fleet)")


async def test_an_operator_clears_a_models_blocks(acl_store: RedisServer) -> None:
    async with member(as_user(acl_store.url, "member"), LIMITS, "a") as a:
        a.hold_for_capacity(60.0)
        await a._fleet.flush()
        assert await clear_model(as_user(acl_store.url, "operator"), "test", MODEL)
        assert not await clear_model(as_user(acl_store.url, "operator"), "test", MODEL)


def test_store_user_goes_into_the_url_and_a_second_user_is_refused(locations: Locations) -> None:
    env = {"MEDOPS_STORE_URL": "redis://127.0.0.1:6379/0", "MEDOPS_STORE_USER": "medops-reader"}
    assert load_settings(locations, env=env).settings.store_url == "redis://medops-reader@127.0.0.1:6379/0"
    with pytest.raises(ConfigError, match="differs from the user in store_url"):
        load_settings(locations, env={**env, "MEDOPS_STORE_URL": "redis://other@127.0.0.1:6379/0"})
    with pytest.raises(ConfigError, match="is not an ACL user name"):
        load_settings(locations, env={**env, "MEDOPS_STORE_USER": "a b"})


def test_acl_lines_never_show_a_password(locations: Locations, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_STORE_NAMESPACE", "test")
    monkeypatch.setenv("MEDOPS_ACL_READER_PASSWORD", "given-reader-secret")
    assert main(["fleet", "acl"]) == 0
    out = capsys.readouterr().out
    assert "given-reader-secret" not in out
    assert "ACL SETUSER medops-reader reset on #" in out and "%R~medops:{test}:*" in out
    generated = [line.split() for line in out.splitlines() if line.startswith("medops-")]
    # shown once, the new ones
    assert sorted(name for name, _ in generated) == ["medops-member", "medops-oncall", "medops-operator"]
    who = {line.split()[1]: line for line in out.splitlines() if line.startswith("#   medops-")}
    assert "medops ask" in who["medops-member"] and "medops --attach --read-only" in who["medops-reader"]
    assert "medops fleet pause" in who["medops-operator"] and "its own core" in who["medops-oncall"]
    assert repr(StoreUser("x", "reader", "pw")).find("pw") == -1
    assert "pw" not in setuser_line(StoreUser("x", "reader", "pw"), "test").split("#")[0]


async def test_fleet_clear_says_what_it_lifted(acl_store: RedisServer, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    async with member(as_user(acl_store.url, "member"), LIMITS, "a") as a:
        a.hold_for_capacity(60.0)
        await a._fleet.flush()
        monkeypatch.setenv("MEDOPS_STORE_URL", acl_store.url)
        monkeypatch.setenv("MEDOPS_STORE_NAMESPACE", "test")
        monkeypatch.setenv("MEDOPS_STORE_USER", "medops-operator")
        monkeypatch.setenv("MEDOPS_STORE_PASSWORD", PASSWORDS["operator"])
        assert await asyncio.to_thread(main, ["fleet", "clear", MODEL]) == 0
        assert f"{MODEL}: 429 blocks, 498 holds and the server's limits lifted" in capsys.readouterr().out
        monkeypatch.setenv("MEDOPS_STORE_USER", "medops-reader")
        monkeypatch.setenv("MEDOPS_STORE_PASSWORD", PASSWORDS["reader"])
        assert await asyncio.to_thread(main, ["fleet", "clear", MODEL]) == 2
        assert "may not lift blocks: set store_user (MEDOPS_STORE_USER) to an operator user" in capsys.readouterr().err


async def test_a_console_with_its_own_core_acts_on_the_fleet_as_the_oncall_user(
        acl_store: RedisServer, tmp_path: Path, built_knowledge: Path) -> None:
    """The console's core and its Fleet tab use one store_url: the oncall user runs the core and sends commands;
    with the member user the Fleet tab is refused, naming the user to use."""
    url = as_user(acl_store.url, "oncall")
    async with fleet_cores(url, tmp_path, built_knowledge, ("console", "ward")) as cores:
        names = sorted(core._fleet.instance for core in cores if core._fleet is not None)
        for _ in range(50):  # their command inboxes open at their first beat
            if all(core._fleet is not None and core._fleet._inbox is not None for core in cores):
                break
            await asyncio.sleep(0.1)
        settings = Settings(store_url=url, store_namespace="test")  # the console's own settings
        issuer = store_issuer(settings)
        setter = store_limit_setter(settings)
        assert issuer is not None and setter is not None
        command, acks = await issuer("pause", names[1])
        assert command.store_user == "medops-oncall" and [(a.instance, a.status) for a in acks] == [
            (names[1], "applied")]
        command, acks = await setter("groq_concurrent", "3", "*")
        assert sorted((a.instance, a.status) for a in acks) == [(name, "applied") for name in names]
        assert await clear_model(url, "test", MODEL) is False  # and it may lift blocks, as an operator may
        as_member = store_issuer(Settings(store_url=as_user(acl_store.url, "member"), store_namespace="test"))
        assert as_member is not None
        with pytest.raises(FleetUnavailable, match="an oncall user for a console that runs its own core"):
            await as_member("resume", "*")


async def test_a_command_with_fields_this_version_does_not_know_is_carried_out(redis_server: RedisServer) -> None:
    """A newer medops may add fields to a command (as store_user was added): a member reads the ones it knows."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    carried: list[Command] = []

    async def handle(command: Command) -> tuple[bool, str]:
        carried.append(command)
        return True, ""

    try:
        inbox = CommandInbox(client, "medops:{test}:", "ward", handle)
        await inbox.start()
        newer = {"id": "cmd-newer", "op": "set_limit", "target": "ward", "operator": "ann@desk",
                 "issued_at": 1.0, "key": "groq_concurrent", "value": "3", "store_user": "medops-operator",
                 "reason": "night shift", "ticket": {"id": 7, "tags": ["a"]}, "signed": None}
        older = {k: v for k, v in newer.items() if k in ("id", "op", "target", "operator", "issued_at")}
        await client.xadd("medops:{test}:commands", {"command": json.dumps(newer), "added_by": "a newer medops"})
        await client.xadd("medops:{test}:commands", {"command": json.dumps({**older, "id": "cmd-older",
                                                                           "op": "pause"})})
        assert await inbox.poll() == 2
        assert [(c.id, c.op, c.key, c.value, c.store_user) for c in carried] == [
            ("cmd-newer", "set_limit", "groq_concurrent", "3", "medops-operator"), ("cmd-older", "pause", "", "", "")]
        acks = await client.hgetall("medops:{test}:ack:cmd-newer")
        assert json.loads(acks["ward"])["status"] == "applied"
    finally:
        await client.aclose()


async def test_an_operator_manages_agent_keys_and_a_gateway_records_their_use_as_the_member_user(
        acl_store: RedisServer, locations: Locations) -> None:
    """`medops gateway key add/revoke` as the operator user; `medops gateway` (a member) finds keys and writes
    their last use, with no EVAL; a reader may not add a key and is told which user to use."""
    clock = FakeClock(1_767_225_600.0)

    def book(role: str) -> KeyBook:
        settings = Settings(store_url=as_user(acl_store.url, role), store_namespace="test")
        return open_key_book(settings, locations, clock, {}, budget=2.0)

    operator, gateway, reader = book("operator"), book("member"), book("reader")
    try:
        secret, old_secret = new_secret(), new_secret()
        await operator.add(new_key("bot", "triage", "high", "critical", [], 1.0), digest(old_secret))
        found = await gateway.find(digest(old_secret))
        assert found is not None and found.name == "bot"
        gateway.touch("bot", 1_767_230_000.0)
        gateway.touch("gone-bot", 1_767_230_001.0)  # a key revoked meanwhile: its use is not written
        await gateway.flush()
        (listed,) = await operator.keys()
        assert listed.last_used == 1_767_230_000.0
        gateway.touch("bot", 1_767_220_000.0)  # an older batch arriving late never goes back in time
        await gateway.flush()
        assert (await operator.keys())[0].last_used == 1_767_230_000.0
        assert await operator.revoke("bot")
        await operator.add(new_key("bot", "triage", "high", "critical", [], 2.0), digest(secret))
        assert (await operator.keys())[0].last_used is None  # a new key of the same name starts unused
        with pytest.raises(KeyBookError, match=r"may not change the agent keys: set store_user .* operator user"):
            await reader.add(new_key("evil", "triage", "critical", "critical", [], 3.0), digest(new_secret()))
        with pytest.raises(KeyBookError, match="may not change the agent keys"):
            await gateway.revoke("bot")  # a member uses keys; it does not manage them
        admin = redis.Redis.from_url(acl_store.url, decode_responses=True)
        assert await admin.hkeys("medops:{test}:gateway:key_used") == []
        await admin.aclose()
    finally:
        for each in (operator, gateway, reader):
            await each.close()


async def test_operators_and_oncall_keep_fleet_wide_settings_members_and_readers_only_read_them(
        acl_store: RedisServer) -> None:
    operator, oncall = as_user(acl_store.url, "operator"), as_user(acl_store.url, "oncall")
    reader = as_user(acl_store.url, "reader")
    await issue(operator, "test", "set_limit", "*", "groq_concurrent", "5", wait=0.2)
    await issue(oncall, "test", "set_limit", "*", "max_retries", "2", wait=0.2)
    stored = await read_fleet_settings(reader, "test")  # a reader reads them (`medops fleet settings`)
    assert [(s.key, s.value, s.store_user) for s in stored.settings] == [
        ("groq_concurrent", "5", "medops-operator"), ("max_retries", "2", "medops-oncall")]
    client = redis.Redis.from_url(as_user(acl_store.url, "member"), decode_responses=True)
    try:
        # A member reads them as it joins, as its own core's client does, and may not change them.
        assert [s.key for s in (await read_settings(client, "medops:{test}:")).settings] == [
            "groq_concurrent", "max_retries"]
        with pytest.raises(NoPermissionError):
            await client.hset("medops:{test}:settings", "groq_concurrent", '{"value":"999"}')
        with pytest.raises(NoPermissionError):
            await client.hdel("medops:{test}:settings", "groq_concurrent")
    finally:
        await client.aclose()
    with pytest.raises(FleetUnavailable, match="may not change the fleet-wide settings: set store_user"):
        await unset_setting(reader, "test", "groq_concurrent")
    with pytest.raises(FleetUnavailable, match="may not send commands to the fleet"):
        await issue(reader, "test", "set_limit", "*", "groq_concurrent", "1", wait=0.2)
    with pytest.raises(FleetUnavailable, match="may not send commands to the fleet"):
        await issue(as_user(acl_store.url, "member"), "test", "set_limit", "*", "groq_concurrent", "1", wait=0.2)
    assert [s.value for s in (await read_fleet_settings(reader, "test")).settings] == ["5", "2"]
    assert await unset_setting(operator, "test", "groq_concurrent")
    assert await unset_setting(oncall, "test", "max_retries")
    assert (await read_fleet_settings(reader, "test")).settings == ()
