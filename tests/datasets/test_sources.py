"""Sources list their pieces deterministically; `datasets list` says what is available."""

from __future__ import annotations

from pathlib import Path

import pytest

from midilm.datasets.registry import list_sources
from midilm.datasets.sources import abc_tasks, chorale_tasks, folder_tasks, select, split_abc_tunes
from midilm.specs.dataset import SourceSpec, dataset_spec
from tests.datasets.params import rules


def test_chorales_follow_the_iterator_order() -> None:
    listing = chorale_tasks("bach_chorales", SourceSpec(kind="music21_chorales", license="PD"))
    tasks = listing.tasks
    assert len(tasks) == 371
    assert [t.id for t in tasks[:2]] == ["bach_chorales/bwv269", "bach_chorales/bwv347"]
    assert tasks[0].source == "music21:bach/bwv269"
    assert len({t.id for t in tasks}) == 371  # 21 chorales appear twice: `bwv267_2`, ...
    assert [t.source for t in tasks if t.name == "bwv267_2"] == ["music21:bach/bwv267"]
    picked = select(listing, "bach_chorales", SourceSpec(names=("bwv277", "bwv269"))).tasks
    assert [t.name for t in picked] == ["bwv269", "bwv277"]  # iterator order, not list order
    with pytest.raises(ValueError, match="bwv9999"):
        select(listing, "bach_chorales", SourceSpec(names=("bwv9999",)))
    capped = select(listing, "bach_chorales", SourceSpec(max_pieces=40), cap=30)
    assert [t.name for t in capped.tasks] == [t.name for t in tasks[:30]]  # the smaller wins
    assert {i.reason for i in capped.issues} == {"not_selected"} and len(capped.issues) == 341
    assert len(select(listing, "bach_chorales", SourceSpec(max_pieces=5), cap=30).tasks) == 5
    assert len(select(listing, "bach_chorales", SourceSpec(), cap=None).tasks) == 371


def test_abc_tunes_are_split_at_x_lines() -> None:
    text = "X: 1\nT: One\nK:G\nGAB|\n\nX: 2\nT: Two\nK:D\nDEF|\n"
    assert [(n, t.splitlines()[1]) for n, t in split_abc_tunes(text)] == [
        ("1", "T: One"),
        ("2", "T: Two"),
    ]
    listing = abc_tasks(
        "oneills1850", SourceSpec(kind="music21_abc", corpus_dir="oneills1850"), rules()
    )
    tasks = listing.tasks
    assert listing.issues == []
    assert len(tasks) == 2009
    assert tasks[11].id == "oneills1850/0001-0050_x12"
    assert tasks[11].text.startswith("X: 12\n")
    assert tasks[11].input == "music21:oneills1850/0001-0050.abc"  # the same on every machine
    assert len({t.id for t in tasks}) == len(tasks)


def test_folder_lists_midi_files_recursively_sorted(tmp_path: Path) -> None:
    for rel in ["b.mid", "a/z.MIDI", "a/y.mid", "notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    listing = folder_tasks("mine", SourceSpec(path=str(tmp_path)), rules())
    assert [t.name for t in listing.tasks] == ["a__y", "a__z", "b"]
    assert [(i.input, i.reason) for i in listing.issues] == [
        (str(tmp_path / "notes.txt"), "unsupported_suffix")
    ]
    with pytest.raises(FileNotFoundError, match=r"dataset\.folders\.gone\.path"):
        folder_tasks("gone", SourceSpec(path=str(tmp_path / "nope")), rules())


def test_list_sources_reports_status(tmp_path: Path, params_factory) -> None:
    params = params_factory(
        sources={
            "bach_chorales": {"kind": "music21_chorales", "enabled": True, "license": "PD"},
            "nothing": {"kind": "music21_abc", "corpus_dir": "no_such_dir", "license": "?"},
        },
        folders={"mine": {"path": str(tmp_path), "license": "CC0"},
                 "gone": {"path": str(tmp_path / "nope"), "license": "?"}},
    )  # fmt: skip
    status = {e["name"]: e["status"] for e in list_sources(dataset_spec(params))}
    assert status["bach_chorales"] == "available"
    assert status["mine"] == "available"
    assert status["nothing"].startswith("missing: ")
    assert status["gone"].startswith("missing: create ")
