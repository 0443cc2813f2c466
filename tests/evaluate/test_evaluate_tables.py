"""The evaluate library end to end on real pieces: the test split analysed once into a cached
reference file, sample sets compared with it, and the rows of T5, T5b and the DVC records."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from midilm.common.spec import ConfigError
from midilm.evaluate import tables
from midilm.evaluate.analysis import PieceItem, analyze_files
from midilm.evaluate.features import FEATURES
from midilm.specs.evaluate import MetricsSpec

METRICS_YAML = """
workers: 2
features:
  groove_positions_per_beat: 12
  bar_quarters_range: [1.5, 8.0]
  fallback_bar_quarters: 4.0
seed001:
  max_quarter_length: 256
  key_window_beats: 16
distribution:
  features: [pitch_range, n_pitches_used, pitch_class_entropy, scale_consistency, polyphony,
             polyphony_rate, empty_beat_rate, groove_consistency, ioi_mean, ioi_std,
             note_density, duration_mean, duration_std, notes_per_bar, pitch_class_histogram]
  headline_features: [pitch_class_entropy, scale_consistency, groove_consistency, polyphony,
                      note_density, ioi_mean]
  fd_features: [pitch_range, pitch_class_entropy, scale_consistency, polyphony,
                empty_beat_rate, groove_consistency, ioi_mean, ioi_std, note_density,
                duration_mean, duration_std, notes_per_bar]
  grid_points: 1024
  max_pairs: 200000
  seed: 1234
  min_pieces: 2
"""


@pytest.fixture(scope="module")
def spec() -> MetricsSpec:
    return MetricsSpec.from_params(yaml.safe_load(METRICS_YAML))


@pytest.fixture(scope="module")
def split(default_profile_midis: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """The 19 pieces as 'test' (10, and an unreadable file) and 'train' (the other 9)."""
    ids = sorted(default_profile_midis)
    broken = tmp_path_factory.mktemp("broken") / "broken.mid"
    broken.write_bytes(b"MThd\x00\x00\x00\x06 not a midi file")
    test = [PieceItem(i, default_profile_midis[i]) for i in ids[::2]] + [
        PieceItem("zz/broken", broken)
    ]
    train = [PieceItem(i, default_profile_midis[i]) for i in ids[1::2]]
    return test, train


@pytest.fixture(scope="module")
def reference(split, spec: MetricsSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reference") / "test_metrics.parquet"
    tables.write_reference(split[0], path, spec)
    return path


def test_the_reference_is_written_once_and_refused_with_other_settings(
    reference: Path, spec: MetricsSpec
) -> None:
    frame = tables.read_reference(reference, spec)
    assert list(frame["id"]) == sorted(frame["id"])
    broken = frame.set_index("id").loc["zz/broken"]
    assert "not a readable MIDI file" in broken["error"] and math.isnan(broken["pitch_range"])
    assert frame["error"].isna().sum() == len(frame) - 1
    other = MetricsSpec.from_params(
        {
            **yaml.safe_load(METRICS_YAML),
            "seed001": {"max_quarter_length": 64, "key_window_beats": 16},
        }
    )
    with pytest.raises(ValueError, match="re-run the reference step"):
        tables.read_reference(reference, other)
    workers_only = MetricsSpec.from_params({**yaml.safe_load(METRICS_YAML), "workers": 1})
    assert len(tables.read_reference(reference, workers_only)) == len(frame)


def test_a_sample_set_against_the_cached_reference(
    split, reference: Path, spec: MetricsSpec, tmp_path: Path
) -> None:
    """Samples: train pieces posing as a model's output (one continues a test piece's prompt)."""
    samples = analyze_files(split[1], spec, "samples")
    rows = tables.compare_to_reference(samples, reference, spec, "gpt")
    assert list(rows["feature"])[-2:] == ["fd_features", "mean_oa_headline"]
    per_feature = rows[rows["feature"].isin([*FEATURES, "pitch_class_histogram"])]
    assert per_feature["oa"].between(0, 1).all() and (per_feature["kl"] >= 0).all()
    assert (rows["pieces_generated"] == 9).all() and (rows["pieces_reference"] == 11).all()
    assert (per_feature["n_reference"] <= 10).all()  # the broken file is not a piece
    ceiling = tables.data_row(split[1], reference, spec)
    pd.testing.assert_frame_equal(
        ceiling.drop(columns="row"), rows.drop(columns="row"), check_exact=False
    )  # all 9 train pieces drawn: the same comparison
    plot = tables.oa_plot_rows(pd.concat([rows, ceiling]))
    assert {r["row"] for r in plot} == {"gpt", "data (train vs test)"}
    json.dumps(plot)


def test_melodic_similarity_and_t5_rows(split, reference: Path, spec: MetricsSpec) -> None:
    ref = tables.read_reference(reference, spec)
    source = ref[ref["error"].isna()].iloc[0]
    items = [PieceItem("sample/0", Path(source["path"]), prompt_notes=4)]
    samples = analyze_files(items, spec)
    sims = tables.sample_melodic_similarity(samples, ref, [source["id"]], [4])
    assert sims.iloc[0]["midilm_melodic_similarity"] == 1.0  # the piece continues itself
    # the author's code compares the continuation with the reference from its start
    assert sims.iloc[0]["thesis_melodic_similarity"] < 1.0
    samples = pd.concat([samples, sims], axis=1)
    chance = pd.concat([ref, tables.chance_melodic_similarity(ref)], axis=1)
    rows = tables.t5_rows({"gpt": samples, "test": chance}).set_index(["row", "variant"])
    assert rows.loc[("test", "thesis"), "failed"] == 1
    assert rows.loc[("test", "midilm"), "melodic_similarity_n"] == 9  # not the broken one's pair
    assert 0 < rows.loc[("test", "midilm"), "consonance"] < 1
    assert rows.loc[("gpt", "midilm"), "melodic_similarity"] == 1.0


def test_dvc_records_are_json_with_nulls(reference: Path, spec: MetricsSpec) -> None:
    frame = tables.read_reference(reference, spec)
    summary = tables.summary_record(frame)
    assert summary["pieces"] == 11 and summary["failed"] == 1
    assert summary["drum_pattern_consistency"] == {"mean": None, "undefined": 10}
    records = tables.per_piece_records(frame)
    assert records[-1]["id"] == "zz/broken" and records[-1]["pitch_range"] is None
    text = tables.dumps({"summary": summary, "pieces": records})
    assert json.loads(text)["summary"]["pieces"] == 11 and "NaN" not in text


def test_the_spec_names_its_conf_file_when_a_key_is_missing() -> None:
    cfg = yaml.safe_load(METRICS_YAML)
    del cfg["seed001"]["key_window_beats"]
    with pytest.raises(ConfigError, match=r"conf/evaluate/default.yaml.*key_window_beats"):
        MetricsSpec.from_params(cfg)


def test_many_files_on_two_workers_give_the_same_rows(
    default_profile_midis: dict[str, Path], spec: MetricsSpec, tmp_path: Path
) -> None:
    items = []
    for index in range(40):  # enough to use the process pool
        source = sorted(default_profile_midis.values())[index % len(default_profile_midis)]
        path = tmp_path / f"{index:02d}.mid"
        shutil.copyfile(source, path)
        items.append(PieceItem(f"p{index:02d}", path))
    one = MetricsSpec.from_params({**yaml.safe_load(METRICS_YAML), "workers": 1})
    parallel = analyze_files(items, spec).drop(columns=["seconds", "path"])
    serial = analyze_files(items, one).drop(columns=["seconds", "path"])
    pd.testing.assert_frame_equal(parallel, serial)
