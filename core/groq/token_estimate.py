"""A conservative prompt-token estimate, taken before Groq has counted anything.

Groq's models use byte-level BPE tokenizers (Llama 3's 128k vocabulary, gpt-oss's
o200k, Qwen's 151k). English prose averages about 4 UTF-8 bytes per token, code
and numbers about 3, and CJK about 3 (one character, three bytes). So one token
per 3 bytes over-counts ordinary text by a third and rarely under-counts, plus a
fixed allowance for the chat template (role headers, end-of-turn tokens and the
system preamble some models add). The quota settles with Groq's real `usage`
afterwards, so over-counting only delays a request briefly; it never wastes quota.
"""

from __future__ import annotations

BYTES_PER_TOKEN = 3
CHAT_TEMPLATE_TOKENS = 80


def estimate_prompt_tokens(prompt: str) -> int:
    """Tokens the prompt will likely cost, rounded up: UTF-8 bytes / 3, plus the template."""
    size = len(prompt.encode("utf-8", errors="replace"))
    return -(-size // BYTES_PER_TOKEN) + CHAT_TEMPLATE_TOKENS
