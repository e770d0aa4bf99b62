"""Cached prompt tokens: Groq gives them back to the token limits after processing, and so does medops."""

from __future__ import annotations

import pytest

from medops.core.groq.requests import Priority, PromptRequest
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations

MODEL = "llama-3.1-8b-instant"


@pytest.mark.usefixtures("knowledge_ready")
async def test_a_repeated_prompt_counts_only_its_uncached_tokens(locations: Locations) -> None:
    core = ResourceCore(Settings(), locations)
    await core.start()
    try:
        prompt = "Summarise the discharge plan for the ward round, in three short bullet points please."
        first = await core.ask(PromptRequest(prompt, "documentation", Priority.CRITICAL, max_completion_tokens=50))
        second = await core.ask(PromptRequest(prompt, "documentation", Priority.CRITICAL, max_completion_tokens=50))
        tpm = {w.name: w.used for w in next(m for m in core.snapshot().quota.models if m.model == MODEL).windows}
    finally:
        await core.stop()
    assert first.completion.cached_tokens == 0
    assert second.completion.cached_tokens == second.completion.prompt_tokens - 1 > 0
    # The endpoint's own count and ours agree: everything of the first, the second less its cached prompt.
    expected = first.completion.total_tokens + second.completion.total_tokens - second.completion.cached_tokens
    assert tpm["tpm"] == expected
    assert second.completion.headers.remaining_tokens == Settings().models[MODEL].tpm - expected

