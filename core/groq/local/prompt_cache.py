"""The local endpoint's prompt cache: which prompts Groq would serve partly from its cache."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from medops.core.clock import Clock


class PromptCache:
    """Groq's prompt caching, simplified: the same messages to the same model within an hour are served
    from the cache, all but the last token, which is always processed."""

    TTL = 3_600.0
    SIZE = 10_000

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._seen: dict[str, float] = {}  # digest -> expires (monotonic); digests only, never text

    def cached(self, model: str, messages: list[Mapping[str, Any]], prompt_tokens: int) -> int:
        digest = hashlib.sha256(json.dumps([model, messages], sort_keys=True).encode()).hexdigest()
        now = self._clock.monotonic()
        hit = self._seen.get(digest, 0.0) > now
        if len(self._seen) >= self.SIZE:
            self._seen = {d: t for d, t in self._seen.items() if t > now}
            if len(self._seen) >= self.SIZE:
                self._seen.pop(next(iter(self._seen)))
        self._seen[digest] = now + self.TTL
        return max(0, prompt_tokens - 1) if hit else 0
