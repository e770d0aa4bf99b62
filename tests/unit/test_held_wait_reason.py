"""Why a request waits while its window is held (an emptied store's carry): held, until when, and why; never
"the fleet has room in 1 s" for the whole hold (a trial)."""

from __future__ import annotations

import time

from medops.core.clock import wall_text
from medops.core.groq.wait_reason import quota_wait
from medops.core.snapshot import ModelQuota, WindowUsage

NOW = 1_780_000_000.0


def quota(rpm: WindowUsage) -> ModelQuota:
    return ModelQuota("m", (rpm, WindowUsage("rpd", 10, 14_400, 40.0), WindowUsage("tpm", 1_000, 100_000, 40.0),
                            WindowUsage("tpd", 1_000, 1_000_000, 40.0)))


def test_a_window_full_only_by_what_is_held_says_held_until_its_end_and_why() -> None:
    held = WindowUsage("rpm", 10, 30, 40.0, held=20, held_until=NOW + 50.0, held_why="store restarted")
    wait = quota_wait(quota(held), 100, 0.0, NOW)
    assert wait is not None
    assert wait.reason == f"rpm held until {wall_text(NOW + 50.0, NOW)} (store restarted)"
    assert wait.until == NOW + 50.0


def test_a_hold_with_no_end_known_says_held_and_why_without_a_time() -> None:
    held = WindowUsage("rpm", 10, 30, 40.0, held=20, held_why="Groq counts more")
    wait = quota_wait(quota(held), 100, 0.0, NOW)
    assert wait is not None and (wait.reason, wait.until) == ("rpm held (Groq counts more)", None)


def test_a_window_with_room_beside_what_it_holds_is_no_reason_to_wait() -> None:
    roomy = WindowUsage("rpm", 10, 30, 40.0, held=5, held_until=NOW + 50.0, held_why="store restarted")
    assert quota_wait(quota(roomy), 100, 0.0, NOW) is None


def test_a_window_full_by_its_own_use_is_full_not_held() -> None:
    full = WindowUsage("rpm", 30, 30, 12.0, held=3, held_until=NOW + 50.0, held_why="store restarted")
    wait = quota_wait(quota(full), 100, 12.0, time.time())
    assert wait is not None and wait.reason.startswith("rpm full until ")
