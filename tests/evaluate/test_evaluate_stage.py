"""The evaluate stage on a small hand-built layout of real chorales."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from midilm.common.paths import Layout
from midilm.evaluate.stage import run_evaluate
from tests.conftest import REPO_ROOT, tiny_params

PARAMS = tiny_params(REPO_ROOT)
PARAMS["evaluate"].update(max_reference_pieces=3, key_window_measures=4, max_quarter_length=32)


def build_layout(root: Path, chorales: list[Path]) -> Layout:
    layout = Layout(root)
    raw = root / "data" / "raw" / "midi" / "bach"
    raw.mkdir(parents=True)
    rows = []
    for i, src in enumerate(chorales[:5]):
        shutil.copy(src, raw / src.name)
        split = "train" if i == 4 else "test"
        rows.append(
            {
                "id": f"bach/{src.stem}",
                "dataset": "bach",
                "path": f"data/raw/midi/bach/{src.name}",
                "split": split,
            }
        )
    layout.split_dir.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(layout.split_manifest, index=False)

    samples_dir = layout.samples_dir("tiny")
    samples_dir.mkdir(parents=True)
    shutil.copy(chorales[0], samples_dir / "sample_0.mid")  # a "perfect" continuation
    (samples_dir / "sample_1.mid").write_bytes(b"not a midi file")
    reference = f"data/raw/midi/bach/{chorales[0].name}"
    samples = [
        {
            "file": f"sample_{i}.mid",
            "path": f"outputs/samples/tiny/sample_{i}.mid",
            "reference_id": f"bach/{chorales[0].stem}",
            "reference_path": reference,
            "prompt_tokens": 64,
            "prompt_notes": 10,
            "generated_tokens": 100,
            "notes": 30,
            "dropped_tokens": 0,
        }
        for i in range(2)
    ]
    (samples_dir / "samples.json").write_text(
        json.dumps({"model": "tiny", "settings": {}, "samples": samples})
    )
    return layout


def test_run_evaluate_scores_samples_and_test_pieces(
    chorale_midis: list[Path], tmp_path: Path
) -> None:
    layout = build_layout(tmp_path, chorale_midis)
    summary = run_evaluate(PARAMS, layout)
    out = layout.metrics_dir("tiny")
    first = (out / "music_metrics.json").read_bytes(), (out / "per_piece.csv").read_bytes()

    assert summary["model"] == "tiny"
    assert summary["generated"]["pieces"] == 2 and summary["generated"]["failed"] == 1
    assert summary["generated"]["melodic_similarity"] == 1.0
    assert summary["test"]["pieces"] == 3 and summary["test"]["failed"] == 0
    assert 0 < summary["test"]["rhythm_consistency"] <= 1
    assert json.loads(first[0]) == summary

    per_piece = pd.read_csv(out / "per_piece.csv")
    assert list(per_piece["group"]) == ["generated", "generated", "test", "test", "test"]
    assert list(per_piece["id"][2:]) == sorted(f"bach/{p.stem}" for p in chorale_midis[:4])[:3]
    assert per_piece["error"].notna().sum() == 1

    run_evaluate({**PARAMS, "evaluate": {**PARAMS["evaluate"], "workers": 1}}, layout)
    assert (
        (out / "music_metrics.json").read_bytes(),
        (out / "per_piece.csv").read_bytes(),
    ) == first
