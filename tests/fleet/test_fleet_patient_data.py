"""No patient data in the fleet's store: failing documents with names that identify a patient, run through a real
member, and every key and value of the store scanned for those names."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as redis

from medops.core.errors import DocumentError
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.document_files import encrypted_pdf
from tests.helpers.redis_server import RedisServer

MARKERS = ("JaneDoe", "MRN5551234", "JohnRoe", "MRN7770001", "MaryMajor", "MRN4242424")


async def every_value(client: redis.Redis) -> list[bytes]:
    """Each key's name and everything in it, whatever its type."""
    found: list[bytes] = []
    async for key in client.scan_iter(count=1000):
        found.append(key)
        kind = (await client.type(key)).decode()
        value: Any
        if kind == "string":
            value = [await client.get(key)]
        elif kind == "hash":
            value = [b for pair in (await client.hgetall(key)).items() for b in pair]
        elif kind == "zset":
            value = await client.zrange(key, 0, -1)
        elif kind == "set":
            value = list(await client.smembers(key))
        elif kind == "list":
            value = await client.lrange(key, 0, -1)
        elif kind == "stream":
            value = [b for _, fields in await client.xrange(key) for pair in fields.items() for b in pair]
        else:
            raise AssertionError(f"unexpected key type {kind} for {key!r}")
        found.extend(v for v in value if v is not None)
    return found


async def test_failing_documents_named_for_patients_leave_no_name_in_the_store(
        redis_server: RedisServer, tmp_path: Path, built_knowledge: Path) -> None:
    where = Locations(config_dir=tmp_path / "config", data_dir=tmp_path / "data")
    where.ensure()
    shutil.copyfile(built_knowledge, where.knowledge_db)
    intake = where.default_intake_dir
    intake.mkdir(exist_ok=True)
    files = [intake / "JaneDoe_MRN5551234_empty.pdf", intake / "JohnRoe_MRN7770001_broken.pdf"]
    files[0].write_bytes(b"")  # refused at intake: empty
    files[1].write_bytes(b"%PDF-1.7\n" + b"\x00garbage\xff" * 200)  # not a PDF MuPDF can open
    files.append(encrypted_pdf(intake / "MaryMajor_MRN4242424_locked.pdf"))
    core = ResourceCore(Settings(store_url=redis_server.url, store_namespace="test", process_pool_size=1), where,
                        role="worker")
    await core.start()
    try:
        for path in files:
            with pytest.raises(DocumentError):
                await core.extract(path)
        local = core.snapshot().documents.recent
        assert any("JaneDoe" in job.error for job in local)  # the member's own console still says which file
        client = redis.Redis.from_url(redis_server.url)
        try:
            snap_key = f"medops:{{test}}:snap:{core._fleet.instance}" if core._fleet else ""
            published: dict[str, Any] = {}
            for _ in range(50):  # the next heartbeat publishes the snapshot with the three jobs
                raw = await client.get(snap_key)
                published = orjson.loads(raw) if raw else {}
                if len(published.get("documents", {}).get("recent", [])) == 3:
                    break
                await asyncio.sleep(0.1)
            jobs = published["documents"]["recent"]
            assert all(job["error_code"] and job["name"] == "" and job["error"] == "" for job in jobs)
            assert {job["error_code"] for job in jobs} >= {"refused"}
            values = await every_value(client)
        finally:
            await client.aclose()
    finally:
        await core.stop()
    leaks = [(marker, value[:200]) for value in values for marker in MARKERS if marker.encode() in value]
    assert leaks == []
