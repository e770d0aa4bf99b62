"""Intake: only files inside the intake folders, checked by size and magic bytes, hashed."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from medops.core.clock import SystemClock
from medops.core.documents.intake import DocumentKind, Intake, IntakeRefused, resolve_intake_dirs, sniff_kind
from medops.core.executors import ResizablePool
from medops.core.settings.config import MIB, load_settings
from medops.core.settings.paths import Locations
from tests.helpers.document_files import CLINICAL_TEXT, page_image_png, text_pdf


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "intake"
    path.mkdir()
    return path


@pytest.fixture
def intake(folder: Path) -> Intake:
    return Intake((folder,), max_bytes=2 * MIB)


async def test_file_work_runs_on_the_io_pool_it_is_given(folder: Path) -> None:
    io = ResizablePool("io", 2, SystemClock())
    intake = Intake((folder,), max_bytes=2 * MIB, io=io)
    path = text_pdf(folder / "letter.pdf", [CLINICAL_TEXT])
    try:
        await intake.admit(path)
        assert await intake.complete_async(f"{folder}/le") == [str(path)]
        # the check, the open, the reads, the close and the completion: all on the pool
        assert io.snapshot().completed >= 5
    finally:
        io.shutdown()


@pytest.mark.parametrize(("head", "kind"), [
    (b"%PDF-1.7\n", DocumentKind.PDF),
    (b"\x00\x00junk before the header %PDF-1.4", DocumentKind.PDF),
    (b"\x89PNG\r\n\x1a\n\x00\x00", DocumentKind.PNG),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", DocumentKind.JPEG),
    (b"II*\x00\x08\x00", DocumentKind.TIFF),
    (b"MM\x00*\x00\x00", DocumentKind.TIFF),
    (b"PK\x03\x04 a zip file", None),
    (b"Dear colleague, ...", None),
])
def test_type_comes_from_magic_bytes(head: bytes, kind: DocumentKind | None) -> None:
    assert sniff_kind(head) is kind


async def test_a_pdf_in_the_folder_is_admitted_with_its_sha256(intake: Intake, folder: Path) -> None:
    path = text_pdf(folder / "letter.pdf", [CLINICAL_TEXT])
    admitted = await intake.admit(path)
    assert admitted.kind is DocumentKind.PDF
    assert admitted.path == path.resolve()
    assert admitted.size == path.stat().st_size
    assert admitted.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


async def test_the_hash_streams_files_larger_than_one_chunk(intake: Intake, folder: Path) -> None:
    path = folder / "big.pdf"
    data = b"%PDF-1.7\n" + os.urandom(int(1.5 * MIB))
    path.write_bytes(data)
    assert (await intake.admit(path)).sha256 == hashlib.sha256(data).hexdigest()


async def test_a_png_named_pdf_is_taken_as_a_png(intake: Intake, folder: Path) -> None:
    path = folder / "scan.pdf"
    path.write_bytes(page_image_png("x", dpi=30))
    assert (await intake.admit(path)).kind is DocumentKind.PNG


async def test_a_text_file_named_pdf_is_refused(intake: Intake, folder: Path) -> None:
    path = folder / "notes.pdf"
    path.write_text("not a pdf at all")
    with pytest.raises(IntakeRefused, match="is not a PDF, PNG, JPEG or TIFF"):
        await intake.admit(path)


async def test_random_bytes_are_refused(intake: Intake, folder: Path) -> None:
    path = folder / "noise.pdf"
    path.write_bytes(b"\x01" + os.urandom(4096))
    with pytest.raises(IntakeRefused, match="is not a PDF"):
        await intake.admit(path)


async def test_an_empty_file_is_refused(intake: Intake, folder: Path) -> None:
    (folder / "empty.pdf").write_bytes(b"")
    with pytest.raises(IntakeRefused, match="is empty"):
        await intake.admit(folder / "empty.pdf")


async def test_an_oversized_file_is_refused_naming_the_limit(intake: Intake, folder: Path) -> None:
    path = folder / "huge.pdf"
    with path.open("wb") as stream:
        stream.write(b"%PDF-1.7\n")
        stream.truncate(3 * MIB)
    with pytest.raises(IntakeRefused, match=r"3.0 MiB, over the 2 MiB limit.*max_file_size_mb"):
        await intake.admit(path)


async def test_a_symlink_out_of_the_intake_folder_is_refused(intake: Intake, folder: Path, tmp_path: Path) -> None:
    outside = text_pdf(tmp_path / "elsewhere.pdf", [CLINICAL_TEXT])
    (folder / "innocent.pdf").symlink_to(outside)
    with pytest.raises(IntakeRefused, match="outside the intake folders"):
        await intake.admit(folder / "innocent.pdf")


async def test_a_path_climbing_out_with_dotdot_is_refused(intake: Intake, folder: Path, tmp_path: Path) -> None:
    text_pdf(tmp_path / "elsewhere.pdf", [CLINICAL_TEXT])
    with pytest.raises(IntakeRefused, match="outside the intake folders"):
        await intake.admit(folder / ".." / "elsewhere.pdf")


async def test_a_symlink_inside_the_folder_is_followed(intake: Intake, folder: Path) -> None:
    target = text_pdf(folder / "real.pdf", [CLINICAL_TEXT])
    (folder / "alias.pdf").symlink_to(target)
    assert (await intake.admit(folder / "alias.pdf")).path == target.resolve()


async def test_a_fifo_is_refused_without_blocking(intake: Intake, folder: Path) -> None:
    os.mkfifo(folder / "pipe.pdf")
    with pytest.raises(IntakeRefused, match="not a regular file \\(a pipe or device\\)"):
        await intake.admit(folder / "pipe.pdf")


async def test_a_missing_file_is_refused(intake: Intake, folder: Path) -> None:
    with pytest.raises(IntakeRefused, match="no such file"):
        await intake.admit(folder / "absent.pdf")


def test_a_name_not_found_while_an_intake_folder_is_missing_names_that_folder(tmp_path: Path) -> None:
    missing = tmp_path / "scans-not-mounted"
    intake = Intake((missing,), max_bytes=MIB)
    with pytest.raises(IntakeRefused, match=rf"no such file .*; intake folder {missing} does not exist .*: no "
                                            r"document can be read from it; create it, or fix intake_dirs"):
        intake.find("scan.pdf", cwd=tmp_path)


def test_intake_dirs_come_from_the_environment_colon_separated(locations: Locations, tmp_path: Path) -> None:
    env = {"MEDOPS_INTAKE_DIRS": f"{tmp_path / 'a'}:{tmp_path / 'b'}"}
    settings = load_settings(locations, env=env).settings
    assert resolve_intake_dirs(settings, locations) == (tmp_path / "a", tmp_path / "b")


def test_the_default_intake_dir_is_under_the_data_folder(locations: Locations) -> None:
    settings = load_settings(locations, env={}).settings
    intake = Intake.from_settings(settings, locations)
    assert intake.folders == (locations.data_dir / "intake",)
    intake.ensure_default(locations)
    assert (locations.data_dir / "intake").is_dir()


def test_completion_lists_matching_files_and_folders(intake: Intake, folder: Path) -> None:
    (folder / "ward-a").mkdir()
    (folder / "ward-a" / "report.pdf").write_bytes(b"%PDF-1.7")
    (folder / "referral.pdf").write_bytes(b"%PDF-1.7")
    (folder / "xray.png").write_bytes(b"\x89PNG")
    assert intake.complete("re") == ["referral.pdf"]
    assert intake.complete("w") == ["ward-a/"]
    assert intake.complete("ward-a/") == ["ward-a/report.pdf"]
    assert intake.complete(f"{folder}/x") == [f"{folder}/xray.png"]


def test_completion_offers_nothing_outside_the_folders(intake: Intake, folder: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.pdf").write_bytes(b"%PDF-1.7")
    (folder / "link").symlink_to(tmp_path)
    assert intake.complete(f"{tmp_path}/s") == []
    assert intake.complete("link/s") == []
    assert intake.complete("../") == ["../intake/"]  # the way back in, nothing else


async def test_a_folder_is_refused_with_what_to_give_instead(intake: Intake, folder: Path) -> None:
    (folder / "ward-3").mkdir()
    with pytest.raises(IntakeRefused, match="ward-3: is a folder; give a document file inside it"):
        await intake.admit(folder / "ward-3")


def test_the_console_names_paths_relative_to_the_intake_folders(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for f in (first, second):
        f.mkdir()
    (second / "scan.pdf").write_bytes(b"%PDF-1.7")
    intake = Intake((first, second), max_bytes=2 * MIB)
    assert intake.check("scan.pdf", relative_to_intake=True) == (second / "scan.pdf").resolve()
    with pytest.raises(IntakeRefused, match=r"nope\.pdf: no such file in the intake folders \("):
        intake.check("nope.pdf", relative_to_intake=True)
    with pytest.raises(IntakeRefused, match="no path given; type the path of a document"):
        intake.check("   ", relative_to_intake=True)


def test_the_cli_names_paths_relative_to_the_working_directory(intake: Intake, folder: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "scan.pdf").write_bytes(b"%PDF-1.7")
    monkeypatch.chdir(folder.parent)
    with pytest.raises(IntakeRefused, match=r"scan\.pdf: no such file; check the path"):
        intake.check("scan.pdf")
    assert intake.check(f"{folder.name}/scan.pdf") == (folder / "scan.pdf").resolve()


def test_completion_with_nothing_typed_lists_the_tops_of_the_folders(intake: Intake, folder: Path) -> None:
    (folder / "ward-a").mkdir()
    (folder / "referral.pdf").write_bytes(b"%PDF-1.7")
    (folder / ".partial").write_bytes(b"")
    assert intake.complete("") == ["referral.pdf", "ward-a/"]


def swap_after_check(intake: Intake, monkeypatch: pytest.MonkeyPatch, swap: Callable[[], None]) -> None:
    """Make the attacker's timing exact: the path changes right after intake has checked it."""
    for name in ("check", "_check"):
        original = getattr(intake, name, None)
        if original is None:
            continue

        def check_then_swap(*args: Any, original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            checked = original(*args, **kwargs)
            swap()
            return checked

        monkeypatch.setattr(intake, name, check_then_swap)


async def test_a_symlink_swapped_in_after_the_check_is_refused_not_followed(
        intake: Intake, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = text_pdf(folder / "race.pdf", ["inside"])
    outside = text_pdf(tmp_path / "outside.pdf", ["outside secret"])

    def swap() -> None:
        path.unlink()
        path.symlink_to(outside)

    swap_after_check(intake, monkeypatch, swap)
    with pytest.raises(IntakeRefused, match=r"race\.pdf: was replaced"):
        await intake.admit(path)


async def test_a_fifo_swapped_in_after_the_check_is_refused_without_blocking(
        intake: Intake, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = text_pdf(folder / "race.pdf", ["inside"])

    def swap() -> None:
        path.unlink()
        os.mkfifo(path)

    swap_after_check(intake, monkeypatch, swap)
    try:
        with pytest.raises(IntakeRefused, match=r"race\.pdf: is not a regular file"):
            await asyncio.wait_for(intake.admit(path), 10)
    finally:  # a reader left blocked on the FIFO would hang the test run: give it a writer
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


async def test_another_file_renamed_over_it_after_the_check_is_refused(
        intake: Intake, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = text_pdf(folder / "race.pdf", ["inside"])
    other = text_pdf(folder / "other.pdf", ["another file"])
    swap_after_check(intake, monkeypatch, lambda: other.replace(path))
    with pytest.raises(IntakeRefused, match=r"race\.pdf: was replaced by another file"):
        await intake.admit(path)


async def test_admitted_files_hold_the_descriptor_they_were_hashed_from(intake: Intake, folder: Path) -> None:
    path = text_pdf(folder / "letter.pdf", [CLINICAL_TEXT])
    admitted = await intake.admit(path)
    assert admitted.opened is not None
    fd = admitted.opened.fd
    path.unlink()
    assert hashlib.sha256(os.pread(fd, 10 * MIB, 0)).hexdigest() == admitted.sha256
    admitted.close()
    admitted.close()  # twice is harmless
    assert admitted.opened.fd == -1


async def test_a_refused_path_is_not_an_error_of_the_io_pool(folder: Path) -> None:
    """Eleven mistyped paths showed as 'io err 11' in the Pools pane: the user's input, not the pool failing."""
    io = ResizablePool("io", 2, SystemClock())
    intake = Intake((folder,), max_bytes=2 * MIB, io=io)
    try:
        for n in range(3):
            with pytest.raises(IntakeRefused, match="no such file"):
                await intake.check_async(f"missing-{n}.pdf", relative_to_intake=True)
        assert io.snapshot().completed == 3 and io.snapshot().errors == 0
    finally:
        io.shutdown()
