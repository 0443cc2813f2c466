"""Every converter on real files from shared/datasets, through the validating worker."""

from __future__ import annotations

import json
from pathlib import Path

import jams
import pytest
from symusic import Score

from midilm.datasets.converters.guitarpro import GuitarProOptions, bend_value
from midilm.datasets.converters.pianoroll import pianoroll_to_score
from midilm.datasets.inputs import Found
from midilm.datasets.listing import registry_tasks
from midilm.datasets.sources import PieceTask, files_tasks, folder_tasks
from midilm.datasets.worker import process_piece
from midilm.specs.dataset import SourceSpec
from tests.conftest import SHARED_DATASETS
from tests.datasets.params import make_spec, rules

SHARED = SHARED_DATASETS
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="shared/datasets not present")


def kept(task: PieceTask, **filters: object):
    result = process_piece(task, make_spec(filters=filters).filters)
    assert result.kept, (task.source, result.reason, result.detail)
    return result, Score.from_midi(result.midi)


def test_pianoroll_merges_held_notes() -> None:
    score = pianoroll_to_score([[60, 64], [60, 64], [60, 65], [], [60]], steps_per_quarter=4)
    notes = sorted((n.time, n.duration, n.pitch) for n in score.tracks[0].notes)
    assert notes == [(0, 240, 64), (0, 360, 60), (240, 120, 65), (480, 120, 60)]


def test_jsb_json_keeps_the_boulanger_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDILM_MIRROR", str(SHARED))
    tasks = registry_tasks("jsb", SourceSpec(kind="registry", name="jsb_chorales"), rules()).tasks
    counts = {s: sum(t.split == s for t in tasks) for s in ("train", "valid", "test")}
    assert counts == {"train": 229, "valid": 76, "test": 77}
    result, score = kept(tasks[0])
    steps = json.loads(tasks[0].text)
    assert score.tpq == 480 and result.time_signature == "4/4"
    assert score.end() == 120 * len(steps)  # 16th steps of 120 ticks, the last note closed


def test_guitarpro_tracks_and_bends() -> None:
    folder = SHARED / "dadagp_examples" / "examples"
    tasks = folder_tasks("dadagp", SourceSpec(path=str(folder)), rules()).tasks
    assert [t.kind for t in tasks] == ["guitarpro", "guitarpro"]
    result, score = kept(next(t for t in tasks if t.name == "progmetal"))
    assert result.has_drums and result.programs == (25, 30, 33)
    assert [t.note_num() for t in score.tracks] == [830, 537, 341, 241, 811]
    bends = score.tracks[1].pitch_bends
    assert len(bends) == 19 and max(b.value for b in bends) == bend_value(1.0) == 4096
    only = json.dumps({"bend_tracks_only": True})
    progmetal = [Found(str(folder / "progmetal.gp3"), "progmetal.gp3")]
    bent = files_tasks("d", folder, progmetal, SourceSpec(), rules(), options=only).tasks
    assert [t.name for t in kept(bent[0])[1].tracks] == ["Guitar 2"]
    opts = json.dumps({"artists": ["Metallica"]})
    task = files_tasks("d", folder, progmetal, SourceSpec(), rules(), options=opts).tasks[0]
    assert process_piece(task, make_spec().filters).reason == "excluded"
    assert GuitarProOptions.from_json(opts).artists == ("metallica",)


def test_abc_books_are_split_into_tunes() -> None:
    folder = SHARED / "nottingham" / "ABC_cleaned"
    ashover = [Found(str(folder / "ashover.abc"), "ashover.abc")]
    tasks = files_tasks("nottingham", folder, ashover, SourceSpec(), rules()).tasks
    assert len(tasks) > 40 and all(t.kind == "abc" for t in tasks)
    result, _ = kept(tasks[0])
    assert result.programs == (0,) and not result.has_drums


def test_jams_note_midi_annotations(tmp_path: Path) -> None:
    jam = jams.JAMS()
    jam.file_metadata.duration = 4.0
    tempo = jams.Annotation(namespace="tempo")
    tempo.append(time=0.0, duration=4.0, value=90.0, confidence=1.0)
    jam.annotations.append(tempo)
    for string, pitches in enumerate([[40.0, 43.1], [47.0, 45.9, 47.0]]):
        notes = jams.Annotation(namespace="note_midi")
        notes.annotation_metadata.data_source = str(string)
        for i, pitch in enumerate(pitches):
            notes.append(time=0.5 * i, duration=0.5, value=pitch, confidence=None)
        jam.annotations.append(notes)
    jam.save(str(tmp_path / "excerpt.jams"))
    task = folder_tasks("gs", SourceSpec(path=str(tmp_path)), rules()).tasks[0]
    assert task.kind == "jams"
    result, score = kept(task, min_notes=1)
    assert result.tempo == 90.0 and [t.name for t in score.tracks] == ["string 0", "string 1"]
    assert [n.pitch for n in score.tracks[1].notes] == [47, 46, 47]
    assert score.tracks[0].notes[1].time == 360  # 0.5 s at 90 qpm, 480 tpq


def test_groove_official_split_and_drums(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDILM_MIRROR", str(SHARED))
    tasks = registry_tasks("groove", SourceSpec(kind="registry"), rules()).tasks
    counts = {s: sum(t.split == s for t in tasks) for s in ("train", "valid", "test")}
    assert len(tasks) == 1150 and counts == {"train": 897, "valid": 124, "test": 129}
    result, _ = kept(tasks[0])
    assert result.has_drums and result.programs == ()
