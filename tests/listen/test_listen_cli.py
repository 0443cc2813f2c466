"""`midilm listen plan|export` through the typer sub-app (the main CLI mounts it as `listen`)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import yaml
from typer.testing import CliRunner

from midilm.listen.cli import app
from midilm.listen.store import RatingInput, RatingStore
from midilm.listen.testdir import ListeningTest, load_test

LISTEN = {
    "seed": 3,
    "samples_per_model": 1,
    "real_per_participant": 1,
    "anchors": 1,
    "anchors_per_participant": 1,
    "clip_seconds": 1.5,
    "anchor_segment_seconds": 0.25,
    "anchor_lowpass_hz": 3500.0,
    "anchor_snr_db": 10.0,
}


def write_params(path: Path, listen: dict | None) -> Path:
    params = {"seed": 1, "models": {"gpt": {}, "mamba": {}}}
    if listen is not None:
        params["listen"] = listen
    path.write_text(yaml.safe_dump(params))
    return path


def test_plan_then_export(listen_repo: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    params = write_params(tmp_path / "params.yaml", LISTEN)
    folder = tmp_path / "panel"
    args = ["plan", "-n", "2", "--dir", str(folder), "--params", str(params)]
    result = runner.invoke(app, [*args, "--root", str(listen_repo)])
    assert result.exit_code == 0, result.output
    assert "planned 2 sessions over 8 stimuli" in result.output
    plan = list(csv.DictReader(io.StringIO((folder / "plan.csv").read_text())))
    assert len(plan) == 8 and {r["participant"] for r in plan} == {"p001", "p002"}

    test: ListeningTest = load_test(folder)
    store = RatingStore(folder / "ratings.sqlite")
    first = test.sessions["p001"][0]
    store.record_play("p001", first, test.stimuli[first].seconds, test.stimuli[first].seconds)
    answers = {"overall": 2, "clarity": 3, "quality": 4, "match": 5}
    store.add_rating(RatingInput("p001", 0, first, answers, "fine", "cli-test-0001"))
    out = tmp_path / "ratings.csv"
    result = runner.invoke(app, ["export", "--dir", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 ratings written" in result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 1 and rows[0]["stimulus"] == first
    assert rows[0]["condition"] == test.stimuli[first].condition
    assert [rows[0][k] for k in answers] == ["2", "3", "4", "5"]


def test_plan_names_the_missing_conf_group(listen_repo: Path, tmp_path: Path) -> None:
    params = write_params(tmp_path / "params.yaml", None)
    result = CliRunner().invoke(
        app, ["plan", "-n", "2", "--dir", str(tmp_path / "x"), "--params", str(params)]
    )
    assert result.exit_code != 0
    assert "conf/listen/default.yaml" in str(result.exception)
    params = write_params(tmp_path / "params.yaml", {**LISTEN, "clip_secs": 2})
    result = CliRunner().invoke(
        app, ["plan", "-n", "2", "--dir", str(tmp_path / "x"), "--params", str(params)]
    )
    assert "unknown key(s) ['clip_secs']" in str(result.exception)


def test_every_command_has_help() -> None:
    for command in ("plan", "serve", "export"):
        result = CliRunner().invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "--dir" in result.output
