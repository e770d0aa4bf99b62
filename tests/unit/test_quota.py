"""GroqQuota: rolling windows, reservations, server reconciliation, 429 blocks, restarts."""

from __future__ import annotations

import pytest

from medops.core.clock import FakeClock, settle
from medops.core.errors import QuotaError
from medops.core.groq.quota import GroqQuota, QuotaBook, RequestTooLarge, UnknownModel
from medops.core.groq.rate_headers import LimitExceeded, RateLimitHeaders
from medops.core.groq.token_estimate import CHAT_TEMPLATE_TOKENS, estimate_prompt_tokens
from medops.core.settings.config import ModelLimits, Settings
from tests.helpers.quota_helpers import MemoryAdmissionStore, admit_now

SMALL = ModelLimits(rpm=3, rpd=10, tpm=1_000, tpd=5_000, context_window=4_096)


def quota(clock: FakeClock, limits: ModelLimits = SMALL, store: MemoryAdmissionStore | None = None) -> GroqQuota:
    return GroqQuota("m", limits, clock, store)


def windows(q: GroqQuota) -> dict[str, tuple[int, int]]:
    return {w.name: (w.used, w.limit) for w in q.snapshot().windows}


def answered(q: GroqQuota, tokens: int) -> bool:
    """Admit a request whose answer comes back at once (using all it reserved); False if no room."""
    reservation = q.try_admit(tokens)
    if reservation is None:
        return False
    q.settle(reservation, tokens)
    return True


async def test_requests_per_minute_hold_over_any_sixty_seconds(clock: FakeClock) -> None:
    q = quota(clock)
    for _ in range(3):
        assert answered(q, 10)
        await clock.advance(10)
    assert q.try_admit(10) is None
    assert q.wait_time(10) == pytest.approx(30)  # the first admission leaves at +60
    await clock.advance(29.999)
    assert q.try_admit(10) is None
    await clock.advance(0.001)
    assert q.try_admit(10) is not None


async def test_tokens_per_minute_count_the_reserved_amount(clock: FakeClock) -> None:
    q = quota(clock)
    assert q.try_admit(600) is not None
    assert q.try_admit(401) is None
    assert q.try_admit(400) is not None
    assert windows(q)["tpm"] == (1_000, 1_000)


async def test_settling_gives_back_the_unused_reservation(clock: FakeClock) -> None:
    q = quota(clock)
    reservation = q.try_admit(900)
    assert reservation is not None
    assert q.try_admit(500) is None
    q.settle(reservation, 300)
    assert windows(q)["tpm"] == (300, 1_000)
    assert windows(q)["tpd"] == (300, 5_000)
    assert q.try_admit(500) is not None


async def test_a_request_counts_until_a_window_after_its_answer_came_back(clock: FakeClock) -> None:
    # Sent at 0, answered at 5: the server stamped it on arrival, somewhere in between, so it may
    # count there until as late as 65. Stamped at sending, a request sent at 60 could land in the
    # same server minute.
    q = quota(clock)
    reservation = q.try_admit(400)
    assert reservation is not None
    await clock.advance(5)
    q.settle(reservation, 300)
    assert windows(q)["rpm"] == (1, 3) and windows(q)["tpm"] == (300, 1_000)
    await clock.advance(59.999)
    assert windows(q)["rpm"] == (1, 3) and windows(q)["tpm"] == (300, 1_000)
    await clock.advance(0.001)
    assert windows(q)["rpm"] == (0, 3) and windows(q)["tpm"] == (0, 1_000)
    assert windows(q)["rpd"] == (1, 10) and windows(q)["tpd"] == (300, 5_000)


async def test_a_request_in_flight_longer_than_the_window_still_counts(clock: FakeClock) -> None:
    q = quota(clock, ModelLimits(rpm=1, rpd=10, tpm=1_000, tpd=5_000))
    reservation = q.try_admit(900)
    assert reservation is not None
    await clock.advance(200)  # it may reach the server only now
    assert q.in_flight == 1
    assert windows(q)["rpm"] == (1, 1) and windows(q)["tpm"] == (900, 1_000)
    assert q.try_admit(10) is None
    assert q.wait_time(10) == pytest.approx(60)  # at best it settles now and leaves a minute later
    q.settle(reservation, 100)
    assert q.in_flight == 0
    await clock.advance(59.999)
    assert q.try_admit(10) is None
    await clock.advance(0.001)
    assert q.try_admit(10) is not None


async def test_settling_or_releasing_twice_changes_nothing(clock: FakeClock) -> None:
    q = quota(clock)
    first, second = q.try_admit(100), q.try_admit(100)
    assert first is not None and second is not None
    q.settle(first, 50)
    q.settle(first, 10)
    q.release(first)
    q.release(second)
    q.release(second)
    q.settle(second, 10)
    assert windows(q)["rpm"] == (1, 3) and windows(q)["tpm"] == (50, 1_000) and q.in_flight == 0


async def test_releasing_an_unsent_reservation_gives_back_the_request_too(clock: FakeClock) -> None:
    q = quota(clock)
    reservations = [q.try_admit(10) for _ in range(3)]
    assert q.try_admit(10) is None
    q.release(reservations[-1])  # type: ignore[arg-type]
    assert windows(q)["rpm"] == (2, 3)
    assert q.try_admit(10) is not None


async def test_requests_and_tokens_per_day_hold_over_any_24_hours(clock: FakeClock) -> None:
    q = quota(clock, ModelLimits(rpm=100, rpd=4, tpm=10_000, tpd=50_000))
    for _ in range(4):
        assert answered(q, 1)
        await clock.advance(3_600)
    assert q.try_admit(1) is None
    assert q.wait_time(1) == pytest.approx(86_400 - 4 * 3_600)
    await clock.advance(86_400 - 4 * 3_600)
    assert q.try_admit(1) is not None


async def test_a_request_larger_than_tokens_per_minute_is_refused_at_once(clock: FakeClock) -> None:
    q = quota(clock)
    with pytest.raises(RequestTooLarge, match="tokens-per-minute limit of 1,000"):
        q.check_size(1_001)
    with pytest.raises(RequestTooLarge, match="shorten the prompt"):
        q.check_size(1_001)
    assert q.snapshot().refused_too_large == 2


async def test_a_request_larger_than_the_context_window_is_refused_at_once(clock: FakeClock) -> None:
    q = quota(clock, ModelLimits(rpm=3, rpd=10, tpm=100_000, tpd=500_000, context_window=8_192))
    with pytest.raises(RequestTooLarge, match="context window of 8,192"):
        q.check_size(9_000)


async def test_a_full_window_says_which_and_when_room_returns(clock: FakeClock) -> None:
    q = quota(clock)
    for _ in range(3):
        q.settle(admit_now(q, 10), 10)
    assert q.try_admit(10) is None
    assert q.wait_time(10) == pytest.approx(60) and "rpm full" in q.blocking(10)
    await clock.advance(60)
    assert q.try_admit(10) is not None


async def test_server_reporting_fewer_tokens_left_tightens_the_minute(clock: FakeClock) -> None:
    q = quota(clock)
    admit_now(q, 100)
    # Another client on the same key used 700 tokens: the server has 200 left, we think 900.
    q.observe_headers(RateLimitHeaders(limit_tokens=1_000, remaining_tokens=200, reset_tokens=12.0))
    assert windows(q)["tpm"] == (800, 1_000)
    assert q.try_admit(300) is None
    assert q.wait_time(300) == pytest.approx(12.0)
    await clock.advance(12)
    assert q.try_admit(300) is not None


async def test_server_reporting_more_room_never_loosens_local_state(clock: FakeClock) -> None:
    q = quota(clock)
    admit_now(q, 900)
    q.observe_headers(RateLimitHeaders(limit_tokens=1_000, remaining_tokens=1_000, reset_tokens=0.0,
                                       limit_requests=10, remaining_requests=10))
    assert windows(q)["tpm"] == (900, 1_000)
    assert q.try_admit(200) is None


async def test_server_reporting_fewer_requests_left_today_tightens_the_day(clock: FakeClock) -> None:
    q = quota(clock)
    admit_now(q, 10)
    q.observe_headers(RateLimitHeaders(limit_requests=10, remaining_requests=1, reset_requests=600.0))
    assert windows(q)["rpd"] == (9, 10)
    assert q.try_admit(10) is not None
    assert q.try_admit(10) is None
    assert q.snapshot().server.remaining_requests == 1


async def test_a_lower_server_limit_replaces_the_configured_one(clock: FakeClock) -> None:
    q = quota(clock)
    q.observe_headers(RateLimitHeaders(limit_tokens=500, remaining_tokens=500))
    assert windows(q)["tpm"] == (0, 500)
    with pytest.raises(RequestTooLarge):
        q.check_size(600)


async def test_a_429_blocks_its_dimension_for_the_whole_retry_time(clock: FakeClock) -> None:
    q = quota(clock, ModelLimits(rpm=30, rpd=1_000, tpm=12_000, tpd=100_000))
    limit = LimitExceeded("tpd", 100_000, 97_050, 3_619, 578.016)
    q.observe_429(578.016, limit)
    blocked = {w.name: w.blocked_for for w in q.snapshot().windows}
    assert blocked == {"rpm": 0.0, "rpd": 0.0, "tpm": 0.0, "tpd": pytest.approx(578.016)}
    assert q.try_admit(10) is None
    await clock.advance(578)
    assert q.try_admit(10) is None
    await clock.advance(0.016)
    assert q.try_admit(10) is not None
    assert q.snapshot().rate_limited == 1


async def test_a_bare_429_blocks_every_dimension(clock: FakeClock) -> None:
    q = quota(clock)
    q.observe_429(7.0)
    assert all(w.blocked_for == pytest.approx(7.0) for w in q.snapshot().windows)
    assert "blocked by a 429" in q.blocking(10)


async def test_a_429_without_retry_after_still_waits_a_little(clock: FakeClock) -> None:
    q = quota(clock)
    q.observe_429(None, headers=RateLimitHeaders(remaining_tokens=0))
    assert q.try_admit(1) is None
    blocked = {w.name: w.blocked_for for w in q.snapshot().windows}
    assert blocked["tpm"] > 0 and blocked["rpm"] == 0


async def test_admissions_are_recorded_and_a_restart_restores_the_day(clock: FakeClock) -> None:
    store = MemoryAdmissionStore()
    q = quota(clock, store=store)
    first = admit_now(q, 500)
    q.settle(first, 200)
    q.release(admit_now(q, 50))
    await clock.advance(3_600)
    admit_now(q, 300)
    assert sum(r[2] for r in store.rows) == 2
    assert sum(r[3] for r in store.rows) == 500

    # A new process, 30 minutes later, on a fresh monotonic clock.
    later = FakeClock(start=5.0, wall_start=clock.wall() + 1_800)
    book = QuotaBook(Settings(models={"m": SMALL}), later, store)
    assert book.restore() == len(store.rows)
    restored = windows(book["m"])
    assert restored["rpd"] == (2, 10)
    assert restored["tpd"] == (500, 5_000)
    assert restored["tpm"] == (0, 1_000)
    # The first admission leaves the day window 24 h after it was made, not after the restart.
    reset = {w.name: w.reset_in for w in book["m"].snapshot().windows}
    assert reset["tpd"] == pytest.approx(86_400 - 5_400)


async def test_a_restart_within_the_minute_restores_the_minute_too(clock: FakeClock) -> None:
    store = MemoryAdmissionStore()
    q = quota(clock, store=store)
    for _ in range(3):
        admit_now(q, 10)
    later = FakeClock(start=0.0, wall_start=clock.wall() + 20)
    restarted = quota(later)
    restarted.restore([(at, r, t) for _, at, r, t in store.rows])
    assert restarted.try_admit(10) is None
    assert restarted.wait_time(10) == pytest.approx(40)


async def test_a_restart_restores_a_settled_admission_at_its_settle_time(clock: FakeClock) -> None:
    store = MemoryAdmissionStore()
    q = quota(clock, store=store)
    reservation = q.try_admit(400)
    assert reservation is not None
    await clock.advance(5)
    q.settle(reservation, 300)
    q.release(admit_now(q, 50))  # never sent: its row is taken back exactly
    # 55 s after it was sent, 50 s after its answer: it still counts for another 10 s.
    later = FakeClock(start=0.0, wall_start=clock.wall() + 50)
    restarted = quota(later)
    restarted.restore([(at, r, t) for _, at, r, t in store.rows])
    usage = {w.name: (w.used, w.reset_in) for w in restarted.snapshot().windows}
    assert usage["rpm"] == (1, pytest.approx(10)) and usage["tpm"] == (300, pytest.approx(10))
    assert usage["rpd"] == (1, pytest.approx(86_350))


async def test_admissions_older_than_a_day_are_not_restored(clock: FakeClock) -> None:
    store = MemoryAdmissionStore()
    store.record_admission("m", clock.wall() - 86_401, 1, 100)
    store.record_admission("m", clock.wall() - 86_399, 1, 100)
    store.record_admission("gone-model", clock.wall(), 1, 100)
    book = QuotaBook(Settings(models={"m": SMALL}), clock, store)
    book.restore()
    assert windows(book["m"])["rpd"] == (1, 10)


async def test_restore_runs_off_the_event_loop(clock: FakeClock) -> None:
    store = MemoryAdmissionStore()
    store.record_admission("m", clock.wall() - 10, 1, 100)
    book = QuotaBook(Settings(models={"m": SMALL}), clock, store)
    assert await book.restore_async() == 1
    assert windows(book["m"])["rpm"] == (1, 3)


def test_an_unknown_model_is_refused_with_the_known_ones(clock: FakeClock) -> None:
    book = QuotaBook(Settings(), clock)
    with pytest.raises(UnknownModel, match=r"llama-3\.1-8b-instant"):
        book["gpt-5"]


async def test_snapshot_shows_used_limit_remaining_and_reset(clock: FakeClock) -> None:
    book = QuotaBook(Settings(models={"m": SMALL}), clock)
    book["m"].settle(admit_now(book["m"], 250), 250)
    await clock.advance(15)
    await settle()
    (model,) = book.snapshot().models
    by_name = {w.name: w for w in model.windows}
    assert (by_name["tpm"].used, by_name["tpm"].remaining, by_name["tpm"].reset_in) == (250, 750, 45.0)
    assert (by_name["rpd"].used, by_name["rpd"].limit, by_name["rpd"].reset_in) == (1, 10, 86_385.0)
    assert book["m"].remaining() == {"rpm": 2, "rpd": 9, "tpm": 750, "tpd": 4_750}


def test_the_estimate_is_at_least_one_token_per_three_bytes_plus_the_template() -> None:
    assert estimate_prompt_tokens("") == CHAT_TEMPLATE_TOKENS
    assert estimate_prompt_tokens("a" * 300) == 100 + CHAT_TEMPLATE_TOKENS
    assert estimate_prompt_tokens("a" * 301) == 101 + CHAT_TEMPLATE_TOKENS
    assert estimate_prompt_tokens("診断") == 2 + CHAT_TEMPLATE_TOKENS  # 6 UTF-8 bytes


async def test_the_window_edge_is_one_rule_even_where_float_subtraction_rounds() -> None:
    # 1060.1 - 60 < 1000.1 in floating point, while 1000.1 + 60 == 1060.1: one comparison must decide both
    # "has it left the window" and "how long until it leaves", or a fourth request slips into a limit of 3.
    clock = FakeClock(start=1000.1)
    q = quota(clock)
    for _ in range(3):
        q.settle(admit_now(q, 10), 10)
    wait = q.wait_time(10)
    await clock.advance(wait)
    assert clock.monotonic() == 1060.1
    assert q.try_admit(10) is not None
    assert windows(q)["rpm"] == (1, 3)


async def test_changed_limits_apply_at_once_and_server_limits_still_cap_them(clock: FakeClock) -> None:
    book = QuotaBook(Settings(models={"m": SMALL}), clock)
    admit_now(book["m"], 10)
    book["m"].observe_headers(RateLimitHeaders(limit_tokens=800, remaining_tokens=790))
    book.apply(Settings(models={"m": ModelLimits(rpm=1, rpd=10, tpm=2_000, tpd=5_000), "n": SMALL}))
    assert windows(book["m"])["rpm"] == (1, 1)
    assert windows(book["m"])["tpm"] == (10, 800)
    assert book["m"].try_admit(10) is None
    assert book["n"].try_admit(10) is not None


async def test_restoring_after_new_admissions_is_refused_rather_than_double_counted(clock: FakeClock) -> None:
    q = quota(clock)
    admit_now(q, 10)
    with pytest.raises(QuotaError, match="restore at start"):
        q.restore([(clock.wall() - 5, 1, 10)])


async def test_a_capacity_hold_shuts_admissions_until_it_ends_and_shows_in_the_snapshot(clock: FakeClock) -> None:
    q = quota(clock)
    q.hold_for_capacity(2.0)
    q.hold_for_capacity(0.5)  # a shorter hold never cuts the one in force short
    assert q.try_admit(10) is None and q.wait_time(10) == 2.0
    assert "held for 2s after Groq was over capacity (498)" in q.blocking(10)
    snapshot = q.snapshot()
    assert (snapshot.capacity_exceeded, snapshot.capacity_hold) == (2, 2.0)
    await clock.advance(2.0)
    assert q.try_admit(10) is not None and q.snapshot().capacity_hold == 0.0
