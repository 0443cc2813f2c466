"""Own data in one step: a dataset file naming only its folder composes with every other key
from conf/dataset/base.yaml, `midilm datasets add-folder` writes one, `midilm params check`
names the composition params.yaml is, and outputs get the permissions the umask gives."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf
from typer.testing import CliRunner

from midilm.cli import app
from midilm.common.compose import compose_params_text
from midilm.common.io import atomic_dir, write_text_atomic
from midilm.common.paths import Layout
from midilm.common.spec import ConfigError
from midilm.datasets.stage import run_datasets
from midilm.specs.dataset import dataset_spec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo_copy(tmp_path: Path, shared_datasets: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """conf/ and params.yaml in a scratch folder (the working directory), and a folder of six
    real Groove files to add."""
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    mine = tmp_path / "my_midi"
    mine.mkdir()
    for path in sorted((shared_datasets / "groove" / "drummer1" / "session1").glob("*.mid"))[:6]:
        shutil.copy(path, mine / path.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_file_naming_only_its_folder_builds(repo_copy: Path) -> None:
    (repo_copy / "conf" / "dataset" / "mine.yaml").write_text(
        f"name: mine\nfolders:\n  mine: {{path: {repo_copy / 'my_midi'}}}\n"
    )
    params = OmegaConf.create(compose_params_text(Path("conf"), ["dataset=mine"]))
    spec = dataset_spec(params)
    assert set(spec.folders) == {"mine"} and spec.sources == {}  # not mixed with music21
    assert spec.filters.max_file_bytes == 16 * 2**20 and spec.dedup.mode == "none"
    old = os.umask(0o027)
    try:
        run_datasets(params, Layout(root=repo_copy))
    finally:
        os.umask(old)
    raw = Layout(root=repo_copy).raw_dir
    manifest = pd.read_parquet(raw / "manifest.parquet")
    assert len(manifest) == 6 and set(manifest["dataset"]) == {"mine"}
    assert mode(raw) == 0o750 and mode(raw / "manifest.parquet") == 0o640  # the umask's
    assert mode(raw / manifest["path"].iloc[0].removeprefix("data/raw/")) == 0o640


def test_a_missing_key_names_the_dataset_file(repo_copy: Path) -> None:
    params = OmegaConf.create(compose_params_text(Path("conf"), ["dataset=groove"]))
    del params.dataset["filters"]
    from midilm.specs.dataset import dataset_spec

    with pytest.raises(ConfigError, match=r"conf/dataset/groove.yaml .*'filters'"):
        dataset_spec(params)


def test_add_folder_then_params_check(repo_copy: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["params", "compose", "profile=smoke"]).exit_code == 0
    result = runner.invoke(app, ["datasets", "add-folder", "mine", "my_midi", "--license",
                                 "CC BY 4.0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((repo_copy / "conf" / "dataset" / "mine.yaml").read_text())
    folder = str(repo_copy / "my_midi")
    assert written == {"name": "mine", "folders": {"mine": {"path": folder,
                                                            "license": "CC BY 4.0"}}}  # fmt: skip
    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    assert params["profile"] == "smoke" and params["dataset"]["folders"]["mine"]["path"] == folder
    assert mode(repo_copy / "params.yaml") == 0o666 & ~current_umask()

    check = runner.invoke(app, ["params", "check"])
    assert check.exit_code == 0, check.output
    assert "matches conf/ composed with dataset=mine profile=smoke" in flat(check.output)

    text = (repo_copy / "params.yaml").read_text().replace("timeout_s: 60", "timeout_s: 5")
    (repo_copy / "params.yaml").write_text(text)
    check = runner.invoke(app, ["params", "check"])
    assert check.exit_code == 1
    assert "composed with dataset=mine profile=smoke (the closest" in flat(check.output)
    assert "dataset.timeout_s: 5 in params.yaml, 60 from conf/" in flat(check.output)

    again = runner.invoke(app, ["datasets", "add-folder", "mine", "my_midi"])
    assert again.exit_code != 0 and "exists" in str(again.exception)
    bad = runner.invoke(app, ["datasets", "add-folder", "my/data", "my_midi"])
    assert bad.exit_code != 0 and "letters, digits" in str(bad.exception)


def test_atomic_writes_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("y")
    finally:
        os.umask(old)
    assert mode(tmp_path / "a.txt") == 0o644 and mode(tmp_path / "d") == 0o755


def current_umask() -> int:
    from midilm.common.io import current_umask as read

    return read()
