"""Documents made on the spot for the document tests and benchmarks (no binary fixtures)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pymupdf

CLINICAL_LINES = (
    "Patient presents with acute chest pain radiating to the left arm.",
    "History of hypertension and type 2 diabetes mellitus.",
    "Medication: metformin 500 mg twice daily, lisinopril 10 mg once daily.",
    "Blood pressure 150/95 mmHg, pulse 98 per minute, temperature 37.2 C.",
    "Plan: ECG, troponin at 0 and 3 hours, aspirin 300 mg stat.",
)
CLINICAL_TEXT = "\n".join(CLINICAL_LINES)


def text_pdf(path: Path, pages: list[str], fontsize: float = 11) -> Path:
    """A PDF with a real text layer, one string per page."""
    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(50, 50, 545, 800), text, fontsize=fontsize)
    doc.save(path)
    return path


def page_image_png(text: str, dpi: int = 300) -> bytes:
    """A page of `text` rendered to a PNG, as a scanner would produce it."""
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_textbox(pymupdf.Rect(50, 50, 545, 800), text, fontsize=12)
    return bytes(page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY).tobytes("png"))


def scanned_pdf(path: Path, pages: list[str]) -> Path:
    """A PDF whose pages are images of text only: no text layer, so it needs OCR."""
    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page()
        page.insert_image(page.rect, stream=page_image_png(text))
    doc.save(path, deflate=True)
    return path


def encrypted_pdf(path: Path) -> Path:
    """A text PDF that needs a user password to open."""
    doc = pymupdf.open(text_pdf(path.with_suffix(".plain.pdf"), [CLINICAL_TEXT]))
    doc.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="secret", owner_pw="owner")
    path.with_suffix(".plain.pdf").unlink()
    return path


def oversized_page_pdf(path: Path, text: str) -> Path:
    """One 200 x 200 inch page (PDF's maximum) whose only content is an image of text.

    Rendered at 300 dpi it would be 60000 x 60000 pixels (3.6 Gpx).
    """
    doc = pymupdf.open()
    page = doc.new_page(width=14_400, height=14_400)
    page.insert_image(pymupdf.Rect(0, 0, 14_400, 14_400), stream=page_image_png(text, dpi=100))
    doc.save(path, deflate=True)
    return path


def png_bomb(path: Path, width: int = 12_000, height: int = 12_000) -> Path:
    """A valid 1-bit PNG that declares width x height pixels but is a few hundred KB of zeros."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack("!IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def content_bomb_pdf(path: Path, mib: int = 100) -> Path:
    """One page whose content stream inflates to `mib` MiB of text operators from a few hundred KB."""
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((50, 50), "x")
    operator = b"BT /helv 1 Tf 10 10 Td (AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA) Tj ET\n"
    doc.update_stream(page.get_contents()[0], operator * (mib * 1024 * 1024 // len(operator)))
    doc.save(path, deflate=True)
    return path


def form_bomb_pdf(path: Path, mib: int = 100) -> Path:
    """One page that draws a form XObject whose stream inflates to `mib` MiB."""
    source = pymupdf.open()
    content_bomb_pdf(path.with_suffix(".inner.pdf"), mib)
    inner = pymupdf.open(path.with_suffix(".inner.pdf"))
    page = source.new_page()
    page.show_pdf_page(page.rect, inner, 0)  # the inner page becomes a form XObject
    source.save(path, deflate=True)
    path.with_suffix(".inner.pdf").unlink()
    return path
