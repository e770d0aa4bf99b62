"""How an extracted document joins a case in case memory: one entry per content hash, the rest of the case kept."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medops.core.errors import CaseMemoryError, DocumentError

if TYPE_CHECKING:
    from medops.core.documents.results import DocumentResult
    from medops.core.memory.case_memory import CaseMemory


def with_document(case: dict[str, Any] | None, result: DocumentResult) -> dict[str, Any]:
    """The case (or a new one) with this document in `documents`, replacing an earlier copy of the same file."""
    case = case or {}
    documents = [d for d in case.get("documents", []) if d.get("sha256") != result.sha256]
    documents.append({"job_id": result.job_id, "name": result.name, "sha256": result.sha256,
                      "pages": result.pages, "method": result.method, "text": result.text})
    return {**case, "documents": documents}


def store_document(cases: CaseMemory, case_id: str, result: DocumentResult) -> None:
    """Add the document to the case in one read-modify-write, so another process's addition is never lost."""
    try:
        cases.update(case_id, lambda case: with_document(case, result))
    except CaseMemoryError as exc:
        raise DocumentError(f"{result.name}: text extracted ({result.characters:,} characters, {result.job_id}) "
                            f"but not stored in case memory: {exc}") from None
