"""The registry lists every dataset with a status; Groove built from the mirror matches its
published figures in T1; all of shared/datasets ingests with only the bad files quarantined."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from midilm.common.compose import compose_params_text
from midilm.common.params import load_params, to_plain
from midilm.common.paths import Layout
from midilm.datasets.registry import (
    AVAILABLE,
    NEEDS_DOWNLOAD,
    NEEDS_MANUAL,
    get_entry,
    list_sources,
)
from midilm.datasets.stage import run_datasets, run_split
from midilm.report.builders import TABLES
from midilm.specs.dataset import dataset_spec
from tests.conftest import REPO_ROOT, SHARED_DATASETS

SHARED = SHARED_DATASETS
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="shared/datasets not present")


def test_registry_entries_and_status(monkeypatch: pytest.MonkeyPatch, params_factory) -> None:
    monkeypatch.setenv("MIDILM_MIRROR", str(SHARED))
    rows = {r["name"]: r for r in list_sources(dataset_spec(params_factory()))}
    names = {n.split("/", 1)[1].split(":")[0] for n in rows if n.startswith("registry/")}
    assert names == {"jsb_chorales", "maestro_v3", "lakh", "nottingham", "giantmidi_piano",
                     "irishman", "groove", "e_gmd", "dadagp", "guitarset", "folder"}  # fmt: skip
    assert rows["registry/groove"]["status"] == AVAILABLE
    assert rows["registry/jsb_chorales:music21"]["status"] == AVAILABLE
    assert rows["registry/maestro_v3"]["status"] == NEEDS_DOWNLOAD
    assert rows["registry/giantmidi_piano:full"]["status"] == NEEDS_MANUAL
    maestro = get_entry("maestro_v3")
    assert maestro.files[0].size == 58_416_533 and maestro.files[0].sha256 is None
    assert get_entry("lakh", "full").files[0].size == 1_768_163_879
    assert get_entry("e_gmd").options == {"merge_train_test": False}
    with pytest.raises(KeyError, match="no variant"):
        get_entry("lakh", "nope")


def test_groove_t1_matches_the_published_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIDILM_MIRROR", str(SHARED))
    params = OmegaConf.create(compose_params_text(REPO / "conf", ["dataset=groove"]))
    layout = Layout(root=tmp_path)
    run_datasets(params, layout)
    run_split(params, layout)
    params = to_plain(load_params(REPO_ROOT / "params.yaml"))
    table = TABLES["T1_datasets"](params, layout)
    rows = {(r[0], r[1]): r for r in table.rows}
    info = pd.read_csv(SHARED / "groove" / "info.csv")
    assert rows["groove", "total"][2] == len(info) == 1150
    for split, name in [("train", "train"), ("valid", "validation"), ("test", "test")]:
        assert rows["groove", split][2] == (info["split"] == name).sum()
    assert [rows["groove", s][2] for s in ("train", "valid", "test")] == [897, 124, 129]
    hours = rows["groove", "total"][5]
    assert hours == pytest.approx(info["duration"].sum() / 3600, rel=1e-9)  # official: 13.58 h
    assert round(hours, 1) == 13.6  # published "13.6 hours"
    assert rows["groove", "total"][3] == 1149  # one exact duplicate (dedup report)
    assert rows["groove", "total"][8] == 0


# Nottingham's ABC books, 1,034 tunes, take music21 ~200 s on 2 cores; its four shortest books
# (70 tunes) cover the path (the embedded default parses ABC through music21 in every smoke run).
ABC_SAMPLE = ("slip.abc", "xmas.abc", "playford.abc", "morris.abc")


@pytest.mark.slow
def test_all_shared_datasets_ingest(tmp_path: Path, params_factory) -> None:
    """Every folder of shared/datasets through the folder kind, 2 workers: no crash, and only
    the corrupted and the empty MIDI file quarantined (every MIDI file; of the ABC books, a
    sample)."""
    folders = {p.name: {"path": str(p), "license": "?"} for p in sorted(SHARED.iterdir())
               if p.is_dir() and p.name != "nottingham"}  # fmt: skip
    abc = tmp_path / "nottingham_abc"
    abc.mkdir()
    for name in ABC_SAMPLE:
        shutil.copyfile(SHARED / "nottingham" / "ABC_cleaned" / name, abc / name)
    folders["nottingham"] = {"path": str(SHARED / "nottingham" / "MIDI"), "license": "?"}
    folders["nottingham_abc"] = {"path": str(abc), "license": "?"}
    filters = {"min_notes": 1, "max_duration_s": 7200}  # keep long MAESTRO
    params = params_factory(folders=folders, filters=filters, dedup={"mode": "exact"})
    layout = Layout(root=tmp_path)
    run_datasets(params, layout)
    report = pd.read_parquet(layout.quarantine_report)
    bad = {s.rsplit("/", 1)[-1]: r for s, r in zip(report.source, report.reason, strict=True)}
    assert bad == {"ValueError_Control168.mid": "parse_error", "empty.mid": "empty"}
    summary = pd.read_json(layout.raw_dir / "summary.json", typ="series")
    assert summary["kept"] + summary["duplicates"]["removed"] + 2 == sum(
        summary["datasets"][d]["kept"] + summary["datasets"][d]["quarantined"]
        + summary["datasets"][d]["duplicates"] for d in summary["datasets"]
    )  # fmt: skip
