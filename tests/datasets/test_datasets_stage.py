"""The `datasets` and `split` stages on real music: music21's corpus and shared/ MIDI files."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from symusic import Note, Score, Track

from midilm.common.paths import Layout
from midilm.datasets.sources import PieceTask
from midilm.datasets.stage import MANIFEST_COLUMNS, QUARANTINE_COLUMNS, run_datasets, run_split
from midilm.datasets.worker import PieceResult, process_piece
from midilm.specs.dataset import FilterSpec

DEFAULT_SOURCES = {
    "bach_chorales": {"kind": "music21_chorales", "enabled": True, "max_pieces": None,
                      "names": ["bwv269", "bwv347", "bwv277", "bwv153.1"], "license": "PD"},
    "oneills1850": {"kind": "music21_abc", "corpus_dir": "oneills1850", "enabled": True,
                    "max_pieces": 12, "license": "PD"},
    "essen_folksong": {"kind": "music21_abc", "corpus_dir": "essenFolksong", "enabled": True,
                       "max_pieces": 6, "license": "research"},
    "disabled": {"kind": "music21_abc", "corpus_dir": "essenFolksong", "enabled": False,
                 "max_pieces": 6, "license": "research"},
}  # fmt: skip


def read_outputs(layout: Layout) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_parquet(layout.raw_manifest), pd.read_parquet(layout.quarantine_report)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_music21_default_builds_and_quarantines_bwv277(tmp_path: Path, params_factory) -> None:
    layout = Layout(root=tmp_path)
    params = params_factory(sources=DEFAULT_SOURCES)
    run_datasets(params, layout)
    manifest, report = read_outputs(layout)

    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert list(report.columns) == QUARANTINE_COLUMNS
    assert manifest["id"].is_monotonic_increasing and manifest["id"].is_unique
    assert set(manifest["dataset"]) == {"bach_chorales", "oneills1850", "essen_folksong"}
    bwv277 = report[report["source"] == "music21:bach/bwv277"].iloc[0]
    assert bwv277["reason"] == "export_error"
    assert "ExpanderException" in bwv277["detail"]
    assert "bach_chorales/bwv269" in set(manifest["id"])
    # the 12 O'Neill tunes include three that need the shared-meter repair: none is lost
    assert (manifest["dataset"] == "oneills1850").sum() == 12
    for row in manifest.itertuples():
        assert row.path == f"data/raw/midi/{row.id}.mid"
        score = Score(tmp_path / row.path)
        assert score.note_num() == row.n_notes >= 8
        assert len(row.content_hash) == 64 and row.duration_s > 0

    summary = pd.read_json(layout.raw_dir / "summary.json", typ="series")
    assert summary["datasets"]["bach_chorales"] == {
        "inputs": 350, "kept": 3, "quarantined": 1, "skipped": 367,
        "by_reason": {"export_error": 1}, "skipped_by_reason": {"not_selected": 367},
        "duplicates": 0, "repaired": {},  # 350 files: 21 of the 371 chorales appear twice
        "inputs_by_status": {"kept": 3, "quarantined": 1, "skipped": 346},
    }  # fmt: skip
    assert summary["datasets"]["oneills1850"]["repaired"]["shared_meter"] == 3

    # byte-determinism: a second build gives the same files, byte for byte
    other = Layout(root=tmp_path / "again")
    run_datasets(params, other)
    assert tree_bytes(other.raw_dir) == tree_bytes(layout.raw_dir)

    run_split(params, layout)
    split = pd.read_parquet(layout.split_manifest)
    assert list(split.columns) == [*MANIFEST_COLUMNS, "split"]
    assert set(split["split"]) <= {"train", "valid", "test"}
    assert len(split) == len(manifest)


@pytest.fixture
def bad_and_good_folder(tmp_path: Path, shared_datasets: Path) -> tuple[Path, dict[str, str]]:
    """A user folder mixing broken files with good ones; returns it and the expected reasons."""
    tests = shared_datasets / "miditok_test_midis" / "tests"
    folder = tmp_path / "user_midi"
    (folder / "sub").mkdir(parents=True)
    expected: dict[str, str] = {}
    for path in sorted((tests / "MIDIs_corrupted").glob("*")):
        shutil.copy(path, folder / path.name)
        expected[path.name] = "parse_error"
    shutil.copy(tests / "MIDIs_one_track" / "empty.mid", folder / "empty.mid")
    expected["empty.mid"] = "empty"
    (folder / "zero.mid").write_bytes(b"")
    expected["zero.mid"] = "parse_error"  # symusic: file size is less than 14
    (folder / "notes.mid").write_text("C D E F G, not a MIDI file\n", encoding="utf-8")
    expected["notes.mid"] = "parse_error"
    few = Score(480)  # three notes: below dataset.filters.min_notes
    few.tracks.append(Track(name="few", program=0))
    for i, pitch in enumerate([60, 62, 64]):
        few.tracks[0].notes.append(Note(i * 480, 480, pitch, 80))
    few.dump_midi(folder / "sub" / "few.mid")
    expected["sub/few.mid"] = "too_few_notes"
    for name in ["Maestro_1.mid", "POP909_008.mid", "6338816_Etude No. 4.mid"]:
        shutil.copy(tests / "MIDIs_one_track" / name, folder / name)
    return folder, expected


def test_bad_files_are_quarantined_and_good_ones_kept(
    tmp_path: Path, bad_and_good_folder: tuple[Path, dict[str, str]], params_factory
) -> None:
    folder, expected = bad_and_good_folder
    layout = Layout(root=tmp_path)
    run_datasets(params_factory(folders={"user": {"path": str(folder), "license": "?"}}), layout)
    manifest, report = read_outputs(layout)

    prefix = f"folder:{folder.as_posix()}/"
    reasons = dict(zip(report.source.str.removeprefix(prefix), report.reason, strict=True))
    assert reasons == expected
    assert list(report["input"]) == [str(folder / rel) for rel in sorted(expected)]
    assert all(report["detail"].str.len() > 0)
    assert sorted(manifest["id"]) == [
        "user/6338816_Etude_No._4",
        "user/Maestro_1",
        "user/POP909_008",
    ]
    assert all((tmp_path / p).is_file() for p in manifest["path"])


def test_equal_content_gets_equal_hash_and_split(
    tmp_path: Path, chorale_midis: list[Path], params_factory
) -> None:
    folder = tmp_path / "same"
    folder.mkdir()
    for i, path in enumerate(chorale_midis[:4]):
        shutil.copy(path, folder / f"{i}_tpq10080.mid")
        Score(path).resample(96).dump_midi(folder / f"{i}_tpq96.mid")
    layout = Layout(root=tmp_path)
    params = params_factory(folders={"same": {"path": str(folder), "license": "PD"}})
    run_datasets(params, layout)
    run_split(params, layout)
    split = pd.read_parquet(layout.split_manifest).set_index("id")
    for i in range(4):
        a, b = split.loc[f"same/{i}_tpq10080"], split.loc[f"same/{i}_tpq96"]
        assert a["content_hash"] == b["content_hash"] and a["split"] == b["split"]
    assert split["content_hash"].nunique() == 4


def slow_or_crashing(task: PieceTask, filters: FilterSpec) -> PieceResult:
    """The real worker, except that `hang.mid` never finishes, `crash.mid` kills its process and
    `raises.mid` raises outside the worker's own handler."""
    if task.name == "hang":
        time.sleep(600)
    if task.name == "crash":
        os._exit(3)
    if task.name == "raises":
        raise ZeroDivisionError("division by zero")
    return process_piece(task, filters)


def test_hung_and_crashed_files_are_quarantined_and_the_pool_goes_on(
    tmp_path: Path, chorale_midis: list[Path], params_factory
) -> None:
    folder = tmp_path / "midi"
    folder.mkdir()
    for name in ["a.mid", "crash.mid", "hang.mid", "raises.mid", "z.mid"]:
        shutil.copy(chorale_midis[0], folder / name)
    for path in chorale_midis[1:5]:
        shutil.copy(path, folder / path.name)
    layout = Layout(root=tmp_path)
    params = params_factory(folders={"f": {"path": str(folder), "license": "?"}}, timeout_s=2)
    started = time.monotonic()
    run_datasets(params, layout, process=slow_or_crashing)
    assert time.monotonic() - started < 30
    manifest, report = read_outputs(layout)
    assert dict(zip(report.source.str.rsplit("/", n=1).str[-1], report.reason, strict=True)) == {
        "crash.mid": "crash",
        "hang.mid": "timeout",
        "raises.mid": "crash",
    }
    details = dict(zip(report.source.str.rsplit("/", n=1).str[-1], report.detail, strict=True))
    assert details["crash.mid"] == "worker process died (exit 3)"
    assert details["raises.mid"].startswith("ZeroDivisionError: division by zero (at ")
    assert report["input"].str.endswith(("crash.mid", "hang.mid", "raises.mid")).all()
    assert len(manifest) == 6


def test_split_needs_the_raw_manifest(tmp_path: Path, params_factory) -> None:
    with pytest.raises(FileNotFoundError, match="run the datasets stage first"):
        run_split(params_factory(), Layout(root=tmp_path))
