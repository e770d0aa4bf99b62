"""`medops extract` and `ResourceCore.extract`: JSON lines, exit codes, case memory."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from medops.console.cli import main
from medops.core.errors import DocumentError
from medops.core.memory.case_memory import CaseMemory
from medops.core.memory.errors import InvalidCaseId
from medops.core.memory.segment import folder_tag
from medops.core.resource_core import ResourceCore
from medops.core.settings.config import Settings
from medops.core.settings.paths import Locations
from tests.helpers.case_workers import keep_a_store_for
from tests.helpers.document_files import encrypted_pdf, text_pdf

# Most tests here start a core: each gets the session's knowledge base (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("knowledge_ready")

KEYS = {"file", "status", "pages", "characters", "method", "seconds", "error"}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "intake"
    path.mkdir()
    monkeypatch.setenv("MEDOPS_INTAKE_DIRS", str(path))
    monkeypatch.setenv("MEDOPS_PROCESS_POOL_SIZE", "2")
    return path


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_one_json_line_per_file_in_order_and_exit_1_when_any_failed(folder: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    good = text_pdf(folder / "good.pdf", ["aspirin 300 mg", "troponin negative"])
    locked = encrypted_pdf(folder / "locked.pdf")
    outside = text_pdf(tmp_path / "outside.pdf", ["x"])
    code = main(["extract", str(good), str(locked), str(outside), str(folder / "missing.pdf")])
    rows = lines(capsys.readouterr().out)
    assert code == 1
    assert [r["file"] for r in rows] == [str(good), str(locked), str(outside), str(folder / "missing.pdf")]
    assert all(set(r) >= KEYS for r in rows)
    assert rows[0] | {"seconds": 0} == {"file": str(good), "status": "ok", "pages": 2, "characters": 34,
                                        "method": "text", "seconds": 0, "error": None}
    assert [r["status"] for r in rows[1:]] == ["error"] * 3
    assert "password-protected" in str(rows[1]["error"])
    assert "outside the intake folders" in str(rows[2]["error"])
    assert "no such file" in str(rows[3]["error"])
    assert "text" not in rows[0]


def test_text_flag_adds_the_text_and_all_ok_exits_0(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = text_pdf(folder / "good.pdf", ["aspirin 300 mg"])
    assert main(["extract", "--text", str(good)]) == 0
    (row,) = lines(capsys.readouterr().out)
    assert row["status"] == "ok" and row["text"] == "aspirin 300 mg\n"


async def test_with_a_case_id_the_text_joins_the_case_in_case_memory(locations: Locations, tmp_path: Path) -> None:
    folder = tmp_path / "intake"
    folder.mkdir()
    core = ResourceCore(Settings(intake_dirs=(str(folder),), process_pool_size=1), locations)
    await core.start()
    try:
        core.cases.store("case-7", {"triage": "urgent"})
        first = await core.extract(text_pdf(folder / "ecg.pdf", ["sinus rhythm"]), case_id="case-7")
        await core.extract(text_pdf(folder / "labs.pdf", ["troponin negative"]), case_id="case-7")
        case = core.cases.get("case-7")
        assert case["triage"] == "urgent"
        assert [d["text"] for d in case["documents"]] == ["sinus rhythm\n", "troponin negative\n"]
        assert case["documents"][0]["sha256"] == first.sha256
        assert core.intake_folders() == (folder,)
        assert core.snapshot().documents.done == 2
        assert "process" in {pool.name for pool in core.snapshot().pools}
    finally:
        await core.stop()


async def test_text_too_large_for_a_case_slot_is_a_clear_error(locations: Locations, tmp_path: Path) -> None:
    folder = tmp_path / "intake"
    folder.mkdir()
    core = ResourceCore(Settings(intake_dirs=(str(folder),), process_pool_size=1), locations)
    await core.start()
    try:
        long_text = "\n".join(f"line {n}: blood pressure normal, pulse regular" for n in range(60))
        pages = [long_text] * 8
        with pytest.raises(DocumentError, match=r"text extracted .* but not stored in case memory"):
            await core.extract(text_pdf(folder / "long.pdf", pages, fontsize=6), case_id="case-8")
    finally:
        await core.stop()


def test_case_needs_a_running_medops_and_extracts_nothing_without_one(folder: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    good = text_pdf(folder / "good.pdf", ["aspirin 300 mg"])
    assert main(["extract", "--case", "case-9", str(good)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "none runs on" in err and "start the console" in err and "Nothing was extracted" in err


def test_case_goes_into_the_running_medops_case_memory(folder: Path, locations: Locations,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    medops = context.Process(target=keep_a_store_for, args=(str(locations.data_dir), ready, stop))
    medops.start()
    try:
        assert ready.wait(60)
        first = text_pdf(folder / "ecg.pdf", ["sinus rhythm"])
        second = text_pdf(folder / "labs.pdf", ["troponin negative"])
        assert main(["extract", "--case", "case-9", str(first), str(second)]) == 0
        out, err = capsys.readouterr()
        assert [row["case"] for row in lines(out)] == ["case-9", "case-9"]
        assert f"medops PID {medops.pid}" in err
        found = CaseMemory.running(locations.data_dir)
        assert found is not None and found[0] == medops.pid
        with found[1] as cases:
            texts = sorted(d["text"] for d in cases.get("case-9")["documents"])
        assert texts == ["sinus rhythm\n", "troponin negative\n"]
    finally:
        stop.set()
        medops.join(30)


def test_an_unusable_case_id_is_refused_before_any_work(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = text_pdf(folder / "good.pdf", ["aspirin 300 mg"])
    assert main(["extract", "--case", "x" * 65, str(good)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "is not usable" in err


async def test_the_core_refuses_an_unusable_case_id_before_extracting(locations: Locations, tmp_path: Path) -> None:
    folder = tmp_path / "intake"
    folder.mkdir()
    core = ResourceCore(Settings(intake_dirs=(str(folder),), process_pool_size=1), locations)
    await core.start()
    try:
        with pytest.raises(InvalidCaseId):
            await core.extract(text_pdf(folder / "ecg.pdf", ["sinus rhythm"]), case_id="")
        assert core.snapshot().documents.done == 0
    finally:
        await core.stop()


async def test_only_a_core_that_shares_its_cases_can_be_found_by_commands(locations: Locations) -> None:
    command_core = ResourceCore(Settings(process_pool_size=1), locations)  # what each CLI command starts
    console_core = ResourceCore(Settings(process_pool_size=1), locations, shares_cases=True)
    await command_core.start()
    await console_core.start()
    try:
        tag = folder_tag(locations.data_dir)
        assert f"-{tag}-" not in command_core.cases.handle.path
        assert f"-{tag}-" in console_core.cases.handle.path
    finally:
        await console_core.stop()
        await command_core.stop()


def test_a_name_is_taken_from_the_current_folder_or_an_intake_folder_and_says_which(
        folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    text_pdf(folder / "ecg.pdf", ["sinus rhythm"])
    (folder / "scans").mkdir()
    text_pdf(folder / "scans" / "labs.pdf", ["troponin negative"])
    monkeypatch.chdir(folder / "scans")  # the current folder lies inside the intake folder
    assert main(["extract", "ecg.pdf", "labs.pdf"]) == 0
    ecg, labs = lines(capsys.readouterr().out)
    assert (ecg["file"], ecg["status"], ecg["found_in"]) == ("ecg.pdf", "ok", f"intake folder ({folder})")
    assert (labs["status"], labs["found_in"]) == ("ok", f"current folder ({folder / 'scans'})")


def test_a_name_found_nowhere_says_where_it_was_looked_for(
        folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    text_pdf(tmp_path / "outside.pdf", ["x"])
    assert main(["extract", "nowhere.pdf", "outside.pdf"]) == 1
    nowhere, outside = lines(capsys.readouterr().out)
    assert nowhere["error"] == (f"nowhere.pdf: no such file in the current folder ({tmp_path}) or the intake "
                                f"folders ({folder}); check the name")
    assert outside["found_in"] == f"current folder ({tmp_path})"
    assert "outside the intake folders" in str(outside["error"])
