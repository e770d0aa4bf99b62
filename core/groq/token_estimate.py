"""A conservative prompt-token estimate, taken before Groq has counted anything.

Groq's models use byte-level BPE tokenizers (Llama 3's 128k vocabulary, gpt-oss's
o200k, Qwen's 151k). English prose averages about 4 UTF-8 bytes per token, code
and numbers about 3, and CJK about 3 (one character, three bytes). So one token
per 3 bytes over-counts ordinary text by a third and rarely under-counts, plus a
fixed allowance for the chat template (role headers, end-of-turn tokens and the
system preamble some models add). The quota settles with Groq's real `usage`
afterwards, so over-counting only delays a request briefly; it never wastes quota.

A chat is counted piece by piece, each rounded up: every text a model reads in a
message (content parts, reasoning, tool calls' names and arguments, tool call
ids), a role header for each message after the first (the template covers one),
the JSON text of tool definitions and a response schema with the preamble a
template wraps them in, and a fixed figure per image.
"""

from __future__ import annotations

from medops.core.groq.chat import Chat, definitions_json, message_texts

BYTES_PER_TOKEN = 3
CHAT_TEMPLATE_TOKENS = 80
MESSAGE_TOKENS = 8  # role header and end-of-turn of each further message
# Llama 4 cuts an image into at most 16 tiles of 336 x 336 pixels plus one overview tile, 144 tokens each
# (2,448); rounded up. Groq refuses images over 33 megapixels, so no image costs more tiles.
IMAGE_TOKENS = 2_600
TOOLS_PREAMBLE_TOKENS = 150  # the instructions a chat template puts around tool definitions and schemas


def text_tokens(text: str) -> int:
    """One piece of text: UTF-8 bytes / 3, rounded up."""
    return -(-len(text.encode("utf-8", errors="replace")) // BYTES_PER_TOKEN)


def estimate_prompt_tokens(prompt: str) -> int:
    """Tokens a one-line prompt will likely cost, rounded up: UTF-8 bytes / 3, plus the template."""
    return text_tokens(prompt) + CHAT_TEMPLATE_TOKENS


def estimate_chat_tokens(chat: Chat) -> int:
    """Tokens a whole chat request will likely cost before the answer: messages, images, tools, schema."""
    total = CHAT_TEMPLATE_TOKENS + MESSAGE_TOKENS * max(0, len(chat.messages) - 1)
    for message in chat.messages:
        total += sum(text_tokens(text) for text in message_texts(message))
    total += IMAGE_TOKENS * chat.images()
    definitions = [text_tokens(text) for text in definitions_json(chat.params)]
    if definitions:
        total += TOOLS_PREAMBLE_TOKENS + sum(definitions)
    return total
