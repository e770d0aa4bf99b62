"""The fake clock wakes sleepers in order and only when told."""

from __future__ import annotations

import asyncio

from medops.core.clock import FakeClock, format_wall, settle


async def test_sleepers_wake_in_deadline_order_as_time_advances(clock: FakeClock) -> None:
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(f"{name}@{clock.monotonic() - 1000:g}")

    tasks = [asyncio.create_task(sleeper("b", 2)), asyncio.create_task(sleeper("a", 1))]
    await settle()
    assert clock.sleepers == 2
    await clock.advance(0.5)
    assert woke == []
    await clock.advance(2)
    assert woke == ["a@1", "b@2"]
    assert clock.monotonic() == 1002.5
    await asyncio.gather(*tasks)


def test_wall_time_moves_with_monotonic_time(clock: FakeClock) -> None:
    before = clock.wall()
    asyncio.run(clock.advance(60))
    assert clock.wall() - before == 60
    assert format_wall(0) == "1970-01-01T00:00:00+00:00"


def test_a_wall_time_names_its_day_when_it_is_not_today() -> None:
    from datetime import datetime, timedelta

    from medops.core.clock import wall_text

    noon = datetime.now().astimezone().replace(hour=12, minute=0, second=0, microsecond=0)
    at = noon.replace(hour=14, minute=2, second=11)
    assert wall_text(at.timestamp(), noon.timestamp()) == "14:02:11"
    assert wall_text((at + timedelta(days=1)).timestamp(), noon.timestamp()) == "tomorrow 14:02:11"
    later = at + timedelta(days=3)
    assert wall_text(later.timestamp(), noon.timestamp()) == f"{later:%m-%d} 14:02:11"
