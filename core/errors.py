"""One error hierarchy: every failure medops reports is a `MedopsError`.

Messages say what happened and what to do next. They never carry patient data
(case contents, prompts, document text) or the Groq key: lengths, ids and
hashes only. Each part defines its specific errors under the category here.
"""

from __future__ import annotations


class MedopsError(Exception):
    """Base of every error medops raises on purpose."""


class ConfigError(MedopsError):
    """A setting is missing, malformed or out of range."""


class QuotaError(MedopsError):
    """A Groq quota refuses a request (too large, spent, or blocked)."""


class SchedulerError(MedopsError):
    """The scheduler refused, timed out or cancelled a request."""


class GroqError(MedopsError):
    """Talking to Groq (or the local endpoint) failed."""


class CaseMemoryError(MedopsError):
    """The shared case store refused an operation."""


class KnowledgeError(MedopsError):
    """The knowledge base could not answer."""


class LedgerError(MedopsError):
    """The ops ledger could not be opened or written."""


class DocumentError(MedopsError):
    """A document could not be taken in or turned into text."""
