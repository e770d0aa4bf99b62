"""Turning one document into text: PDF text layers with PyMuPDF, OCR with Tesseract.

Pure functions meant to run inside a document worker process, never on the
event loop or in a thread (PyMuPDF is not thread-safe and holds the GIL while
it renders). Every failure is an `ExtractionError` whose message says what is
wrong with the file and what to do; no message carries document text.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import shutil
import subprocess
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medops.core.errors import DocumentError

# Tesseract reads best near 300 dpi.
OCR_DPI = 300
# A rendered page is capped by area and by side, so an oversized page renders at
# a lower resolution instead of allocating hundreds of MB or tripping MuPDF's
# own limit (FzErrorLimit). 25 Mpx grey is 25 MB: A0 at ~190 dpi.
MAX_RENDER_PIXELS = 25_000_000
MAX_RENDER_SIDE = 16_384
# Images larger than this are refused as decompression bombs (a 600 dpi A3 scan is ~70 Mpx).
MAX_IMAGE_PIXELS = 80_000_000
MAX_IMAGE_FRAMES = 500
# Compressed content streams can expand enormously; past this a document is refused
# rather than shipped to the core (7,000 dense pages are ~20 M characters).
MAX_TEXT_CHARACTERS = 20_000_000
# A page's content streams (its own and its forms'), decompressed, may not exceed this: a dense
# text page is ~100 KB, a detailed vector drawing a few MB. Checked before MuPDF interprets the
# page, with a bounded decompression: a 357 KB file whose one page inflates to 100 MB of text
# operators took 46 s and 4.3 GB before the text limit refused it.
MAX_PAGE_CONTENT_BYTES = 32 * 1024 * 1024
INFLATE_CHUNK_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 4 * 1024 * 1024
METHOD_TEXT = "text"
METHOD_OCR = "ocr"
METHOD_BLANK = "blank"
METHOD_NONE = "none"  # no text layer and no OCR possible


class ExtractionError(DocumentError):
    """The file could not be turned into text; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ExtractionOptions:
    """How a worker extracts: OCR language, per-page OCR timeout and the Tesseract binary."""

    ocr_language: str = "eng"
    ocr_page_timeout: float = 60.0
    tesseract_cmd: str = "tesseract"
    ocr_dpi: int = OCR_DPI


@dataclass(frozen=True)
class PageText:
    """One page's text, how it was obtained and how long it took."""

    number: int  # 1-based
    text: str
    method: str  # text, ocr, blank or none
    seconds: float


@dataclass(frozen=True)
class Extraction:
    """A whole document's pages plus what the reader should know (repairs, skipped pages)."""

    pages: tuple[PageText, ...]
    warnings: tuple[str, ...] = ()
    repaired: bool = False


@dataclass
class _Ocr:
    """Tesseract, checked once per worker: is it there, and does it know the language?"""

    options: ExtractionOptions
    _problem: str | None = None
    _checked: bool = False
    warnings: list[str] = field(default_factory=list)

    def problem(self) -> str | None:
        """Why OCR cannot run here, or None when it can."""
        if not self._checked:
            self._checked = True
            self._problem = _tesseract_problem(self.options)
        return self._problem

    def read(self, image: Any, page: int) -> str:
        """OCR one greyscale image; a page past the time limit yields no text and a warning.

        The image goes to Tesseract on its stdin, as a PGM made in memory: a page image is
        patient data, and a file of it would outlive a worker killed mid-page.
        """
        width, height = image.size
        pgm = b"P5\n%d %d\n255\n" % (width, height) + image.tobytes()
        command = [self.options.tesseract_cmd, "stdin", "stdout", "-l", self.options.ocr_language]
        try:
            done = subprocess.run(command, input=pgm, capture_output=True, timeout=self.options.ocr_page_timeout,
                                  check=False)
        except subprocess.TimeoutExpired:  # run() has killed it
            self.warnings.append(f"page {page}: OCR stopped after {self.options.ocr_page_timeout:g} s "
                                 "(ocr_page_timeout); its text is missing")
            return ""
        except OSError:
            done = None
        if done is None or done.returncode != 0:
            self.warnings.append(f"page {page}: Tesseract could not read the page image; its text is missing")
            return ""
        return done.stdout.decode("utf-8", errors="replace")


def _tesseract_problem(options: ExtractionOptions) -> str | None:
    import pytesseract

    if shutil.which(options.tesseract_cmd) is None:
        return (f"Tesseract ({options.tesseract_cmd}) is not installed; install it "
                "(`make tesseract` or apt-get install tesseract-ocr) to read scans and images")
    pytesseract.pytesseract.tesseract_cmd = options.tesseract_cmd
    try:
        known = set(pytesseract.get_languages(config=""))
    except (pytesseract.TesseractError, OSError, RuntimeError):
        return f"Tesseract ({options.tesseract_cmd}) does not run; check `tesseract --version`"
    missing = [lang for lang in options.ocr_language.split("+") if lang not in known]
    if missing:
        return (f"Tesseract has no data for language {'+'.join(missing)} (ocr_language); install "
                f"tesseract-ocr-{missing[0]} or set ocr_language to one of {', '.join(sorted(known))}")
    return None


def render_zoom(width_pt: float, height_pt: float, dpi: int = OCR_DPI) -> float:
    """The render scale for a page: `dpi`, lowered so the image stays within the pixel and side caps."""
    zoom = dpi / 72
    area = width_pt * height_pt
    if area <= 0:
        return 0.0
    zoom = min(zoom, math.sqrt(MAX_RENDER_PIXELS / area), MAX_RENDER_SIDE / max(width_pt, height_pt))
    return zoom


PageCallback = Callable[[PageText, int], None]


def extract(path: str | Path, kind: str, options: ExtractionOptions,
            on_page: PageCallback | None = None,
            timer: Callable[[], float] = time.perf_counter, data: bytes | None = None) -> Extraction:
    """Extract a document of `kind` (pdf, png, jpeg, tiff); `on_page(page, total)` after each page.

    `data`: the document's bytes, already read (then `path` only names it in messages).
    """
    if kind not in ("pdf", "png", "jpeg", "tiff"):
        raise ExtractionError("unsupported", f"documents of type {kind!r} are not supported; give a PDF or an image")
    if kind == "pdf":
        return extract_pdf(path, options, on_page, timer, data)
    return extract_image(path, options, on_page, timer, data)


def read_descriptor(fd: int, name: str, expected_sha256: str) -> bytes:
    """The bytes of the descriptor intake opened, refused unless they hash as intake found them.

    Read by offset, never by path: the file intake checked is the file extracted, whatever
    happens to its name since. Rewritten in place, it no longer hashes the same and is refused.
    """
    chunks: list[bytes] = []
    offset = 0
    try:
        while chunk := os.pread(fd, READ_CHUNK_BYTES, offset):
            chunks.append(chunk)
            offset += len(chunk)
    except OSError as exc:
        raise ExtractionError("unreadable", f"{name}: cannot be read ({exc.strerror}); send it again") from None
    data = b"".join(chunks)
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ExtractionError("changed", f"{name}: changed after intake checked it; wait until it is fully "
                              "written, then send it again")
    return data


def extract_pdf(path: str | Path, options: ExtractionOptions,
                on_page: PageCallback | None = None,
                timer: Callable[[], float] = time.perf_counter, data: bytes | None = None) -> Extraction:
    """Text layer per page; pages without one are rendered (resolution capped) and OCR'd.

    `data`: the file's bytes, already read (then `path` only names it).
    """
    import pymupdf

    name = Path(path).name
    try:
        doc = pymupdf.open(path, filetype="pdf") if data is None else pymupdf.open(stream=data, filetype="pdf")
    except pymupdf.EmptyFileError:
        raise ExtractionError("empty", f"{name}: is empty; the upload or copy may have failed, send it again") from None
    except (RuntimeError, pymupdf.mupdf.FzErrorBase):
        raise ExtractionError("damaged", f"{name}: is not a readable PDF (damaged beyond repair); ask for a new "
                              "copy or export it again") from None
    with doc:
        # needs_pass first: reading it after authenticate() locks the document again.
        if doc.needs_pass:
            raise ExtractionError("encrypted", f"{name}: is password-protected; save an unprotected copy "
                                  "(print to PDF) and send that")
        repaired = bool(doc.is_repaired)
        try:
            total = doc.page_count
        except (RuntimeError, pymupdf.mupdf.FzErrorBase):
            raise ExtractionError("damaged", f"{name}: its page tree is damaged beyond repair; ask for a new "
                                  "copy") from None
        if total == 0:  # nothing to read is not a success: MuPDF "repairs" garbage into an empty document
            raise ExtractionError("no-pages", f"{name}: has no pages (damaged, or not really a PDF); ask for a new "
                                  "copy or export it again")
        ocr = _Ocr(options)
        notes: list[str] = []
        if repaired:
            notes.append(f"{name} was damaged and repaired while opening; text may be incomplete")
        pages: list[PageText] = []
        characters = 0
        for index in range(total):
            started = timer()
            text, method = _pdf_page(doc, index, ocr, options, notes, name)
            characters += len(text)
            if characters > MAX_TEXT_CHARACTERS:
                raise ExtractionError("text-limit", f"{name}: yields more than {MAX_TEXT_CHARACTERS:,} characters "
                                      f"by page {index + 1}; it may be hostile. Split it, or ask for a new copy")
            page = PageText(index + 1, text, method, timer() - started)
            pages.append(page)
            if on_page is not None:
                on_page(page, total)
        no_ocr = [p.number for p in pages if p.method == METHOD_NONE]
        if no_ocr:
            notes.append(f"{len(no_ocr)} page(s) have no text layer and were not OCR'd: {ocr.problem()}")
        return Extraction(tuple(pages), tuple(notes + ocr.warnings), repaired)


def _pdf_page(doc: Any, index: int, ocr: _Ocr, options: ExtractionOptions, notes: list[str],
              name: str) -> tuple[str, str]:
    import pymupdf

    number = index + 1
    try:
        page = doc.load_page(index)
        if page_content_bytes(doc, page, MAX_PAGE_CONTENT_BYTES) > MAX_PAGE_CONTENT_BYTES:
            raise ExtractionError("content-limit", f"{name}: page {number}'s "
                                  f"drawing instructions expand past {MAX_PAGE_CONTENT_BYTES // 1024**2} MiB; it "
                                  "may be hostile. Ask for a new copy (print it to PDF, or scan it)")
        text: str = page.get_text("text")
    except (RuntimeError, pymupdf.mupdf.FzErrorBase):
        notes.append(f"page {number}: could not be read (damaged); skipped")
        return "", METHOD_NONE
    if text.strip():
        return text, METHOD_TEXT
    if ocr.problem() is not None:
        return "", METHOD_NONE
    rect = page.rect
    zoom = render_zoom(rect.width, rect.height, options.ocr_dpi)
    if zoom <= 0:
        return "", METHOD_BLANK
    if zoom < options.ocr_dpi / 72 * 0.999:
        notes.append(f"page {number}: {rect.width / 72:.0f} x {rect.height / 72:.0f} in, rendered at "
                     f"{zoom * 72:.0f} dpi to stay within {MAX_RENDER_PIXELS // 1_000_000} Mpx")
    try:
        pix = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), colorspace=pymupdf.csGRAY, alpha=False)
    except (RuntimeError, pymupdf.mupdf.FzErrorBase):  # FzErrorLimit is not a RuntimeError
        notes.append(f"page {number}: could not be rendered (MuPDF refused it as too large or too complex); "
                     "skipped")
        return "", METHOD_NONE
    from PIL import Image

    image = Image.frombytes("L", (pix.width, pix.height), pix.samples)
    del pix
    # Pillow, not Pixmap.is_unicolor: that one loops in Python (9 s for one A4 page).
    darkest, lightest = image.getextrema()
    if darkest == lightest:
        return "", METHOD_BLANK
    return ocr.read(image, number), METHOD_OCR


def page_content_bytes(doc: Any, page: Any, limit: int) -> int:
    """The decompressed size of a page's content streams and its forms', counted only up to just past `limit`."""
    xrefs = list(page.get_contents())
    xrefs += [xref for xref, *_ in page.get_xobjects() if doc.xref_get_key(xref, "Subtype")[1] == "/Form"]
    total = 0
    for xref in dict.fromkeys(xrefs):
        total += _stream_bytes(doc, xref, limit - total + 1)
        if total > limit:
            break
    return total


def _stream_bytes(doc: Any, xref: int, budget: int) -> int:
    """One stream's decompressed size, inflating at most `budget` bytes of it (FlateDecode, the usual filter)."""
    kind, value = doc.xref_get_key(xref, "Filter")
    raw = doc.xref_stream_raw(xref) or b""
    if kind == "null":
        return len(raw)
    if value.strip("[] ") != "/FlateDecode":  # rarer filters: MuPDF decodes them (they do not compress 1000:1)
        return len(doc.xref_stream(xref) or b"")
    inflate = zlib.decompressobj()
    size = 0
    pending = raw
    try:
        while pending and size <= budget:
            size += len(inflate.decompress(pending, INFLATE_CHUNK_BYTES))
            pending = inflate.unconsumed_tail
    except zlib.error:
        return size  # damaged: MuPDF reads what it can, no more than what inflated here
    return size


def extract_image(path: str | Path, options: ExtractionOptions,
                  on_page: PageCallback | None = None,
                  timer: Callable[[], float] = time.perf_counter, data: bytes | None = None) -> Extraction:
    """OCR an image (every frame of a multi-page TIFF); decompression bombs are refused.

    `data`: the file's bytes, already read (then `path` only names it).
    """
    from PIL import Image, ImageSequence, UnidentifiedImageError

    name = Path(path).name
    ocr = _Ocr(options)
    problem = ocr.problem()
    if problem is not None:
        raise ExtractionError("no-ocr", f"{name}: is an image and needs OCR, but {problem}")
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # Pillow only warns between the limit and twice it; a bomb is a bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path if data is None else io.BytesIO(data)) as image:
                frames = _frames(image, ImageSequence.Iterator, name)
                pages: list[PageText] = []
                total = getattr(image, "n_frames", 1)
                for number, frame in enumerate(frames, start=1):
                    started = timer()
                    frame.load()
                    grey = frame.convert("L")
                    darkest, lightest = grey.getextrema()
                    if darkest == lightest:
                        text, method = "", METHOD_BLANK
                    else:
                        text, method = ocr.read(grey, number), METHOD_OCR
                    page = PageText(number, text, method, timer() - started)
                    pages.append(page)
                    if on_page is not None:
                        on_page(page, total)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ExtractionError("image-bomb", f"{name}: declares more than {MAX_IMAGE_PIXELS // 1_000_000} "
                              "Mpx (a decompression bomb, or a scan at absurd resolution); rescan at 300 dpi") from None
    except UnidentifiedImageError:
        raise ExtractionError("damaged", f"{name}: is not a readable image; ask for a new copy") from None
    except (OSError, SyntaxError, ValueError):  # Pillow reports truncated or corrupt data this way
        raise ExtractionError("damaged", f"{name}: the image data is damaged or truncated; ask for a new "
                              "copy") from None
    return Extraction(tuple(pages), tuple(ocr.warnings))


def _frames(image: Any, iterator: Callable[[Any], Iterator[Any]], name: str) -> Iterator[Any]:
    """Each frame, refusing frames that are bombs and files with absurd frame counts."""
    from PIL import Image

    for count, frame in enumerate(iterator(image), start=1):
        if count > MAX_IMAGE_FRAMES:
            raise ExtractionError("too-many-frames", f"{name}: has more than {MAX_IMAGE_FRAMES} frames; split it")
        width, height = frame.size
        if width * height > MAX_IMAGE_PIXELS:
            raise Image.DecompressionBombError(f"{width * height} pixels")
        yield frame
