"""Prompts of every kind through the CLI: one piece of N seconds from a MIDI file, text in the
encoding, seed 001's random notes, a WAV file transcribed by basic-pitch (a tiny model trained
on MIDICompact chorales)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import symusic
import yaml
from typer.testing import CliRunner

from midilm.audio.render import fluidsynth_render
from midilm.audio.soundfont import resolve_soundfont
from midilm.cli import app
from midilm.common.paths import Layout
from midilm.generate.prompts import random_notes
from midilm.generate.prompts import test_prompts as split_prompts
from midilm.specs.audio import audio_spec
from midilm.specs.generate import RandomPromptSpec
from midilm.tokenize import load_tokenizer
from midilm.train.stage import run_train
from tests.conftest import REPO_ROOT, build_packed_corpus, tiny_params

SECONDS = 30.0


@pytest.fixture(scope="module")
def midicompact_model(
    chorale_midis: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Layout, Path]:
    """A repo with the tiny model trained on MIDICompact chorales; its params file."""
    params = tiny_params(REPO_ROOT, steps=150, tokenizer="midicompact")  # enough to write waits
    params["generate"].update(max_new_tokens=1500, prompt_tokens=48, batch_size=2)
    layout = build_packed_corpus(
        chorale_midis, tmp_path_factory.mktemp("mc"), params, "midicompact"
    )
    run_train(params, layout)
    params_file = layout.root / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    return layout, params_file


def _generate(repo: tuple[Layout, Path], out: Path, *options: str) -> dict[str, Any]:
    layout, params_file = repo
    args = ["generate", "tiny", "--params", str(params_file), "--root", str(layout.root)]
    result = CliRunner().invoke(app, [*args, "--out", str(out), *options])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads((out / "samples.json").read_text())


@pytest.mark.parametrize("kind", ["midi", "text", "random", "audio"])
def test_one_command_generates_a_piece_of_n_seconds(
    kind: str,
    midicompact_model: tuple[Layout, Path],
    chorale_midis: list[Path],
    tmp_path: Path,
) -> None:
    layout, _ = midicompact_model
    options = ["--prompt", kind, "--seconds", str(SECONDS), "--num-samples", "1"]
    if kind == "midi":
        options += ["--prompt-path", str(chorale_midis[0])]
    if kind == "audio":  # a chorale played by FluidSynth, heard back by basic-pitch
        spec = audio_spec(tiny_params(REPO_ROOT))
        soundfont = resolve_soundfont(spec.soundfont)
        audio = fluidsynth_render(chorale_midis[2], soundfont, spec.sample_rate, spec.gain)
        wav = tmp_path / "prompt.wav"
        soundfile.write(wav, audio[: spec.sample_rate * 8], spec.sample_rate, subtype="PCM_16")
        options += ["--prompt-path", str(wav)]
    if kind == "text":
        tokenizer = load_tokenizer(layout.tokens_dir("midicompact"))
        ids = tokenizer.encode(symusic.Score(str(chorale_midis[1])))[:40]
        text = tmp_path / "prompt.txt"
        text.write_text(tokenizer.to_text(ids))
        options += ["--prompt-path", str(text)]
    result = _generate(midicompact_model, tmp_path / "out", *options)
    (sample,) = result["samples"]
    assert result["settings"]["prompt"] == kind and result["settings"]["target_seconds"] == SECONDS
    score = symusic.Score(str(tmp_path / "out" / "sample_000.mid"))
    seconds = float(score.to("second").end())
    assert SECONDS <= seconds == pytest.approx(sample["seconds"], abs=1e-3)
    assert sample["generated_tokens"] < 1500 and not sample["eos"]  # the target ended it
    assert sample["prompt_notes"] > 0
    if kind == "midi":
        assert sample["reference_id"] == chorale_midis[0].stem


def test_a_text_prompt_needs_a_text_encoding(
    trained: Layout, tiny: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    from midilm.generate.stage import run_generate

    text = tmp_path / "prompt.txt"
    text.write_text("3c:8 t10 3c:0")
    with pytest.raises(ValueError, match="has no text form"):
        run_generate(tiny(), trained, out_dir=tmp_path / "o", prompt="text", prompt_path=str(text))


def test_random_notes_follow_seed_001() -> None:
    spec = RandomPromptSpec(notes=8, pitch=(50, 90), velocity_bin=(1, 15), wait=(20, 80), repeat=2)
    score = random_notes(spec, np.random.default_rng(0))
    notes = score.tracks[0].notes
    assert len(notes) == 16  # 8 notes, played twice
    pitches = [n.pitch for n in notes]
    assert pitches[:8] == pitches[8:] and all(50 <= p <= 90 for p in pitches)
    waits = np.diff([n.time for n in notes])  # ms (1 tick = 1 ms)
    assert all(160 <= w <= 640 and w % 8 == 0 for w in waits)
    assert all(n.velocity >= 1 for n in notes)


def test_test_prompts_are_a_seeded_sample_of_the_test_split(packed_corpus: Layout) -> None:
    """Each test piece once, in an order the seed picks (not the ids'), the same for a seed."""
    orders = {
        seed: tuple(p.reference_id for p in split_prompts(packed_corpus, "remi", 2, 8, seed))
        for seed in range(8)
    }
    assert {tuple(sorted(order)) for order in orders.values()} == {tuple(sorted(orders[0]))}
    assert len(set(orders.values())) == 2  # both orders occur: the seed decides
    again = [p.reference_id for p in split_prompts(packed_corpus, "remi", 2, 8, 5)]
    assert tuple(again) == orders[5]
