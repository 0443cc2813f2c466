"""The generate stage on a tiny trained model: valid MIDI, a complete samples.json, repeatable."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import pytest
import symusic

from midilm.common.io import read_json
from midilm.common.paths import Layout
from midilm.generate.stage import run_generate


@pytest.fixture(scope="module")
def generated(trained: Layout, tiny: Callable[..., dict[str, Any]]) -> tuple[Layout, dict, bytes]:
    params = tiny()
    run_generate(params, trained)
    out = trained.samples_dir("tiny")
    first = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    shutil.rmtree(out)
    result = run_generate(params, trained)
    return trained, result, first


def test_writes_valid_midi_and_samples_json(generated: tuple[Layout, dict, dict]) -> None:
    layout, result, _ = generated
    out = layout.samples_dir("tiny")
    assert sorted(p.name for p in out.iterdir()) == [
        "sample_000.mid", "sample_001.mid", "sample_002.mid", "samples.json",
    ]  # fmt: skip
    assert read_json(out / "samples.json") == result
    assert result["model"] == "tiny" and result["settings"]["top_k"] == 8
    test_ids = [s["reference_id"] for s in result["samples"]]
    assert sorted(test_ids[:2]) == ["bach/bwv10.7", "bach/bwv38.6"]  # the two test chorales
    for index, sample in enumerate(result["samples"]):
        score = symusic.Score(str(layout.root / sample["path"]))
        assert score.note_num() == sample["notes"] > sample["prompt_notes"] >= 0
        assert sample["reference_id"] == test_ids[index % 2]  # cycles: 3 samples, 2 pieces
        assert (layout.root / sample["reference_path"]).exists()
        assert sample["prompt_tokens"] == 16
        assert 0 < sample["generated_tokens"] <= 80
        assert 0 <= sample["dropped_tokens"] <= sample["generated_tokens"]


def test_two_runs_write_identical_files(generated: tuple[Layout, dict, dict]) -> None:
    layout, _, first = generated
    second = {p.name: p.read_bytes() for p in sorted(layout.samples_dir("tiny").iterdir())}
    assert first == second


def test_missing_model_names_the_stage(fresh_layout: Callable[[], Layout], tiny: Callable) -> None:
    with pytest.raises(FileNotFoundError, match="dvc repro train"):
        run_generate(tiny(), fresh_layout())
