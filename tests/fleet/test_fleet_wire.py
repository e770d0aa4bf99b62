"""The quota's wire: keys, entries and replies as the Lua library reads and writes them."""

from __future__ import annotations

from medops.core.fleet.wire import (
    MODEL_KEYS,
    NAMESPACE_KEYS,
    Carried,
    Dimension,
    Flying,
    HoldMinute,
    LegacyWire,
    Released,
    Settled,
    Status,
    Wire,
    decode_admit,
    decode_heartbeat,
    encode_entry,
    marked,
    speaks_current,
)


def test_every_key_of_a_call_carries_the_namespaces_hash_tag() -> None:
    keys = Wire("org").model_keys("m")
    assert len(keys) == len(NAMESPACE_KEYS) + len(MODEL_KEYS)
    assert all(k.startswith("medops:{org}:") for k in keys)
    assert Wire("org").clear("m").keys == ("medops:{org}:q:m:sig",)


def test_the_old_wire_passes_its_prefix_and_the_model_first() -> None:
    call = LegacyWire("org").settle("m", "a:1", 5)
    assert (call.library, call.function, call.keys, call.args) == ("medops_quota_v2", "medops_settle",
                                                                   ("medops:org:",), ("m", "a:1", 5))


def test_entries_are_encoded_as_sync_reads_them() -> None:
    assert [encode_entry(e) for e in (Settled("a:1", 1000, 1, 7), Flying("a:2", 9), Released("a:3"),
                                      Carried("b", 10, 20, (1, 2, 3, 4)), HoldMinute(30_000, 0))] == [
        "s a:1 1000 1 7", "f a:2 9", "r a:3", "c b 10 20 1 2 3 4", "h 30000 0"]


def test_dimensions_are_one_based_on_the_wire_and_named_in_python() -> None:
    assert [(d.value, d.index, d.label) for d in Dimension] == [(1, 0, "rpm"), (2, 1, "rpd"), (3, 2, "tpm"),
                                                               (4, 3, "tpd")]
    assert Wire("org").server_limit("m", Dimension.TPM, 6000).args == ("limit", 3, 6000)


def test_replies_are_read_by_name() -> None:
    admitted = decode_admit([5, "ok", "0", 1, 2, 3, 4, 10, 20, 30, 40, 0, 0, 0, 0, 0, 1, 1, 3, 3])
    assert admitted.status is Status.OK and admitted.usage is not None and admitted.own == (1, 1, 3, 3)
    assert admitted.usage.used[Dimension.TPM.index] == 3 and admitted.usage.limit == (10, 20, 30, 40)
    seeding = decode_admit([5, "seeding", "1200"])
    assert seeding.status is Status.SEEDING and seeding.wait_ms == 1200 and seeding.usage is None
    beat = decode_heartbeat([5, "e1", 0, 2, *range(13), 2, "a|1", 3, "b|4", 9], models=1)
    assert beat.usages[0].held_ms == 12 and beat.parts[0] == {"a": (3, 0, 0, 0), "b": (0, 0, 0, 9)}


def test_a_newer_member_on_the_old_wire_is_told_from_an_old_one() -> None:
    assert speaks_current(marked('{"instance":"new"}'))
    assert not speaks_current('{"instance":"old"}') and not speaks_current("not json")
