"""Both experiments end to end at tiny sizes, and exact resume after SIGKILL and SIGTERM."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import symusic
import yaml

from midilm.common.io import read_json
from midilm.common.paths import Layout
from midilm.orchestration.launch import REQUEUE_EXIT_CODE
from midilm.report.seqgan import seqgan_table
from midilm.seqgan.music import load_melodies, run_music_task
from midilm.seqgan.oracle import run_oracle_experiment
from midilm.seqgan.stage import run_seqgan_oracle
from midilm.specs.seqgan import SeqGANSpec
from tests.seqgan.conftest import nottingham_layout, seqgan_params
from tests.train.launching import stage_env

SAMPLE_KEYS = {"file", "path", "reference_id", "reference_path", "prompt_tokens", "prompt_notes",
               "generated_tokens", "notes", "seconds", "dropped_tokens", "eos"}  # fmt: skip


def _curve(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((out / "curve.csv").read_text())))


def test_oracle_then_music_end_to_end(
    tmp_path: Path, tiny_spec: SeqGANSpec, nottingham_midis: Path
) -> None:
    layout = nottingham_layout(tmp_path, nottingham_midis, 40)
    oracle = run_oracle_experiment(tiny_spec, layout.seqgan_dir("oracle"))
    rows = oracle["rows"]
    assert set(rows) == {"random", "mle", "seqgan"}
    assert rows["mle"]["nll_oracle"] < rows["random"]["nll_oracle"]
    assert oracle["oracle"]["nll_of_its_own_samples"] < rows["mle"]["nll_oracle"]
    assert oracle["rollout_policy"].startswith("delayed (update rate 0.8")
    assert read_json(layout.seqgan_dir("oracle") / "metrics.json") == json.loads(json.dumps(oracle))
    curve = _curve(layout.seqgan_dir("oracle"))
    # MLE points before training and every 2 epochs; adversarial batches 0 and 2 (the last)
    assert [(r["phase"], r["epoch"]) for r in curve] == [
        ("mle", "0"), ("mle", "2"), ("mle", "4"), ("adversarial", "5"), ("adversarial", "7"),
    ]  # fmt: skip
    assert all(float(r["nll_oracle"]) > 0 for r in curve)
    assert not (layout.seqgan_dir("oracle") / "work").exists()
    assert read_json(layout.seqgan_dir("oracle") / "speed.json")["peak_memory_mb"] > 0

    speed = tmp_path / "speed" / "music.json"
    music = run_music_task(
        tiny_spec, layout, layout.seqgan_dir("music"), tmp_path / "samples", speed
    )
    assert (
        read_json(speed)["wall_s"] > 0 and not (layout.seqgan_dir("music") / "speed.json").exists()
    )
    assert set(music["rows"]) == {"random", "mle", "seqgan", "valid split (real melodies)"}
    assert 0 < music["rows"]["mle"]["bleu4"] <= 1 and music["rows"]["seqgan"]["mse"] >= 0
    assert music["rows"]["random"]["mse"] > music["rows"]["mle"]["mse"]
    assert {"bleu4", "mse"} <= set(_curve(layout.seqgan_dir("music"))[0])
    samples = read_json(tmp_path / "samples" / "samples.json")
    assert samples["model"] == "seqgan" and len(samples["samples"]) == 3
    test_ids = {r[0] for r in _test_origins(layout, tiny_spec)}
    for sample in samples["samples"]:
        assert set(sample) == SAMPLE_KEYS
        assert sample["reference_id"] in test_ids
        score = symusic.Score(str(tmp_path / "samples" / sample["file"]))
        assert score.note_num() == sample["notes"] and sample["seconds"] <= 32 * 0.4 + 1e-6

    table = seqgan_table({}, layout)
    cells = {row[0]: row[1:] for row in table.cells()}
    assert cells["SeqGAN (this run)"] == [
        f"{oracle['rows']['seqgan']['nll_oracle']:.3f}",
        f"{music['rows']['seqgan']['bleu4']:.4f}",
        f"{music['rows']['seqgan']['mse']:.2f}",
    ]
    assert cells["SeqGAN, Yu et al. 2017 (reported)"] == ["8.736", "0.9406", "20.62"]
    assert cells["random (untrained generator), Yu et al. 2017 (reported)"] == ["10.310", "", ""]
    assert "delayed (update rate 0.8" in table.to_markdown()


def _test_origins(layout: Layout, spec: SeqGANSpec) -> list[tuple[str, str]]:
    return load_melodies(spec.music, layout).origins["test"]


# --- resume ------------------------------------------------------------------------------------

SLOW = {"adversarial_batches": 12}  # long enough to be interrupted at a checkpoint


def _outputs(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("metrics.json", "curve.csv")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    layout = Layout(tmp_path_factory.mktemp("uninterrupted"))
    run_seqgan_oracle(seqgan_params(**SLOW), layout)
    assert layout.speed_file("seqgan", "oracle").exists()
    return _outputs(layout.seqgan_dir("oracle"))


def _interrupt(layout: Layout, checkpoints: str, sig: signal.Signals) -> int:
    """Run the stage in a subprocess; send `sig` once out/work/<checkpoints> holds a
    checkpoint; the exit code."""
    params = layout.root / "params.yaml"
    params.write_text(yaml.safe_dump(seqgan_params(**SLOW)))
    child = Path(__file__).with_name("child.py")
    process = subprocess.Popen([sys.executable, str(child), str(params), str(layout.root)],
                               env=stage_env(), stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list((layout.seqgan_dir("oracle") / "work" / checkpoints).glob("step-*")):
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    process.send_signal(sig)
    return process.wait(timeout=60)


@pytest.mark.slow
def test_sigkill_in_the_adversarial_phase_then_resume_equals_uninterrupted(
    tmp_path: Path, uninterrupted: dict[str, bytes]
) -> None:
    layout = Layout(tmp_path)
    out = layout.seqgan_dir("oracle")
    assert _interrupt(layout, "adversarial_checkpoints", signal.SIGKILL) == -signal.SIGKILL
    assert not (out / "metrics.json").exists()
    assert (out / "work" / "mle.safetensors").exists()  # MLE done; adversarial checkpointed
    run_seqgan_oracle(seqgan_params(**SLOW), layout)
    assert _outputs(out) == uninterrupted


@pytest.mark.slow
def test_sigterm_in_mle_checkpoints_exits_to_be_requeued_and_resumes_exactly(
    tmp_path: Path, uninterrupted: dict[str, bytes]
) -> None:
    layout = Layout(tmp_path)
    assert _interrupt(layout, "mle_checkpoints", signal.SIGTERM) == REQUEUE_EXIT_CODE
    assert list((layout.seqgan_dir("oracle") / "work" / "mle_checkpoints").glob("step-*"))
    run_seqgan_oracle(seqgan_params(**SLOW), layout)
    assert _outputs(layout.seqgan_dir("oracle")) == uninterrupted
