"""Extraction functions (the worker side), called directly: text layers, OCR, hostile files."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pymupdf
import pytest
from PIL import Image

from medops.core.documents.extraction import (
    MAX_RENDER_PIXELS,
    MAX_RENDER_SIDE,
    ExtractionError,
    ExtractionOptions,
    extract,
    render_zoom,
)
from tests.helpers.document_files import (
    CLINICAL_LINES,
    CLINICAL_TEXT,
    content_bomb_pdf,
    encrypted_pdf,
    form_bomb_pdf,
    oversized_page_pdf,
    page_image_png,
    png_bomb,
    scanned_pdf,
    text_pdf,
)

OPTIONS = ExtractionOptions()
NO_TESSERACT = ExtractionOptions(tesseract_cmd="/nonexistent/tesseract")


def character_error_rate(expected: str, got: str) -> float:
    """Levenshtein distance over the expected length, whitespace runs counted as one space."""
    a, b = " ".join(expected.split()), " ".join(got.split())
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1] / max(1, len(a))


def test_character_error_rate_counts_edits() -> None:
    assert character_error_rate("abcd", "abcd") == 0
    assert character_error_rate("abcd", "abxd") == 0.25
    assert character_error_rate("a  b\nc", "a b c") == 0


def test_text_layer_pages_come_back_in_order(tmp_path: Path) -> None:
    pages = ["first page: aspirin 300 mg", "second page: troponin negative", "third page: discharge"]
    result = extract(text_pdf(tmp_path / "three.pdf", pages), "pdf", OPTIONS)
    assert [p.text.strip() for p in result.pages] == pages
    assert [p.method for p in result.pages] == ["text"] * 3
    assert not result.repaired and result.warnings == ()


def test_progress_is_reported_after_every_page(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    extract(text_pdf(tmp_path / "two.pdf", ["one", "two"]), "pdf", OPTIONS,
            on_page=lambda page, total: seen.append((page.number, total)))
    assert seen == [(1, 2), (2, 2)]


def test_a_scanned_page_is_ocrd_with_under_2_percent_character_errors(tmp_path: Path) -> None:
    result = extract(scanned_pdf(tmp_path / "scan.pdf", [CLINICAL_TEXT]), "pdf", OPTIONS)
    assert result.pages[0].method == "ocr"
    assert character_error_rate(CLINICAL_TEXT, result.pages[0].text) < 0.02


def test_a_png_is_ocrd_directly(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(page_image_png(CLINICAL_TEXT))
    result = extract(path, "png", OPTIONS)
    assert [p.method for p in result.pages] == ["ocr"]
    assert character_error_rate(CLINICAL_TEXT, result.pages[0].text) < 0.02


def test_every_frame_of_a_tiff_is_a_page(tmp_path: Path) -> None:
    frames = [Image.open(io.BytesIO(page_image_png(line, dpi=200))) for line in CLINICAL_LINES[:2]]
    path = tmp_path / "fax.tiff"
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="tiff_deflate")
    result = extract(path, "tiff", OPTIONS)
    assert len(result.pages) == 2
    for line, page in zip(CLINICAL_LINES[:2], result.pages, strict=True):
        assert character_error_rate(line, page.text) < 0.05


def test_a_blank_page_is_not_sent_to_tesseract(tmp_path: Path) -> None:
    doc = pymupdf.open()
    doc.new_page()
    doc.save(tmp_path / "blank.pdf")
    result = extract(tmp_path / "blank.pdf", "pdf", OPTIONS)
    assert [(p.method, p.text) for p in result.pages] == [("blank", "")]


def test_render_resolution_is_capped_by_area_and_side() -> None:
    assert render_zoom(595, 842) == pytest.approx(300 / 72)
    zoom = render_zoom(14_400, 14_400)
    assert (14_400 * zoom) ** 2 <= MAX_RENDER_PIXELS * 1.0001
    thin = render_zoom(14_400, 10)
    assert 14_400 * thin <= MAX_RENDER_SIDE * 1.0001
    assert render_zoom(0, 842) == 0


def test_an_oversized_page_is_rendered_within_the_cap_and_still_read(tmp_path: Path) -> None:
    result = extract(oversized_page_pdf(tmp_path / "poster.pdf", CLINICAL_TEXT), "pdf", OPTIONS)
    assert result.pages[0].method == "ocr"
    assert "chest pain" in result.pages[0].text
    assert any("200 x 200 in, rendered at" in w for w in result.warnings)


def test_an_encrypted_pdf_is_reported_as_such(tmp_path: Path) -> None:
    with pytest.raises(ExtractionError, match="password-protected") as caught:
        extract(encrypted_pdf(tmp_path / "locked.pdf"), "pdf", OPTIONS)
    assert caught.value.reason == "encrypted"


def test_a_pdf_cut_before_its_xref_yields_the_recovered_text_and_says_it_was_repaired(tmp_path: Path) -> None:
    whole = text_pdf(tmp_path / "whole.pdf", ["first kept page", "second kept page"]).read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(whole[: whole.rindex(b"xref")])
    result = extract(cut, "pdf", OPTIONS)
    assert [p.text.strip() for p in result.pages] == ["first kept page", "second kept page"]
    assert result.repaired
    assert any("repaired" in w for w in result.warnings)


def test_a_pdf_cut_in_its_first_third_is_reported_damaged(tmp_path: Path) -> None:
    whole = text_pdf(tmp_path / "whole.pdf", ["first", "second"]).read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(ExtractionError, match=r"not a readable PDF.*ask for a new copy") as caught:
        extract(cut, "pdf", OPTIONS)
    assert caught.value.reason == "damaged"


def test_a_pdf_header_with_nothing_behind_it_is_reported_damaged(tmp_path: Path) -> None:
    path = tmp_path / "stub.pdf"
    path.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<")
    with pytest.raises(ExtractionError) as caught:
        extract(path, "pdf", OPTIONS)
    assert caught.value.reason == "damaged"
    assert "ask for a new copy" in str(caught.value)


def test_a_decompression_bomb_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExtractionError, match="decompression bomb") as caught:
        extract(png_bomb(tmp_path / "bomb.png"), "png", OPTIONS)
    assert caught.value.reason == "image-bomb"


def test_a_truncated_image_is_reported_damaged(tmp_path: Path) -> None:
    data = page_image_png(CLINICAL_TEXT, dpi=100)
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ExtractionError, match="damaged or truncated"):
        extract(path, "png", OPTIONS)


def test_without_tesseract_text_pdfs_still_work(tmp_path: Path) -> None:
    result = extract(text_pdf(tmp_path / "t.pdf", ["aspirin"]), "pdf", NO_TESSERACT)
    assert result.pages[0].text.strip() == "aspirin"


def test_without_tesseract_scanned_pages_are_skipped_with_a_warning(tmp_path: Path) -> None:
    result = extract(scanned_pdf(tmp_path / "s.pdf", ["aspirin"]), "pdf", NO_TESSERACT)
    assert result.pages[0].method == "none"
    assert any("not OCR'd" in w and "Tesseract" in w and "not installed" in w for w in result.warnings)


def test_without_tesseract_an_image_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(page_image_png("aspirin", dpi=100))
    with pytest.raises(ExtractionError, match=r"needs OCR, but Tesseract .* is not installed") as caught:
        extract(path, "png", NO_TESSERACT)
    assert caught.value.reason == "no-ocr"


def test_an_unknown_ocr_language_is_named(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(page_image_png("aspirin", dpi=100))
    with pytest.raises(ExtractionError, match="no data for language xyz"):
        extract(path, "png", ExtractionOptions(ocr_language="eng+xyz"))


def test_a_page_past_the_ocr_timeout_is_left_empty_with_a_warning(tmp_path: Path) -> None:
    hurried = ExtractionOptions(ocr_page_timeout=0.001)
    result = extract(scanned_pdf(tmp_path / "scan.pdf", [CLINICAL_TEXT]), "pdf", hurried)
    assert [(p.method, p.text) for p in result.pages] == [("ocr", "")]
    assert any("OCR stopped after 0.001 s" in w and "ocr_page_timeout" in w for w in result.warnings)


def test_a_pdf_whose_text_expands_past_the_limit_is_refused(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("medops.core.documents.extraction.MAX_TEXT_CHARACTERS", 1_000)
    with pytest.raises(ExtractionError, match="more than 1,000 characters by page 2") as caught:
        extract(text_pdf(tmp_path / "long.pdf", ["word " * 150] * 3), "pdf", OPTIONS)
    assert caught.value.reason == "text-limit"


def test_a_pdf_of_nested_arrays_with_no_pages_is_a_failure_not_an_empty_success(tmp_path: Path) -> None:
    path = tmp_path / "nested.pdf"
    path.write_bytes(b"%PDF-1.4\n1 0 obj\n" + b"[" * 200_000 + b"\nendobj\ntrailer\n<</Root 1 0 R>>\n%%EOF\n")
    with pytest.raises(ExtractionError, match=r"nested\.pdf: has no pages") as refused:
        extract(path, "pdf", OPTIONS)
    assert refused.value.reason == "no-pages"


def test_ocr_writes_no_page_image_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    nowhere = tmp_path / "not-a-folder"
    nowhere.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(nowhere))  # any temporary file would fail here
    result = extract(scanned_pdf(tmp_path / "scan.pdf", [CLINICAL_TEXT]), "pdf", OPTIONS)
    assert result.pages[0].method == "ocr" and result.warnings == ()
    assert character_error_rate(result.pages[0].text, CLINICAL_TEXT) < 0.02


@pytest.mark.parametrize("make", [content_bomb_pdf, form_bomb_pdf], ids=["page-stream", "form-xobject"])
def test_a_content_stream_bomb_is_refused_before_its_page_is_interpreted(tmp_path: Path,
                                                                        make: Callable[[Path], Path]) -> None:
    path = make(tmp_path / "bomb.pdf")
    assert path.stat().st_size < 1024 * 1024
    with pytest.raises(ExtractionError, match=r"bomb\.pdf: page 1's drawing instructions expand past 32 MiB") as no:
        extract(path, "pdf", OPTIONS, data=path.read_bytes())
    assert no.value.reason == "content-limit"
