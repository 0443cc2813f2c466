"""Planning a listening test: blinded stimuli, balanced seeded sessions, the degraded anchor."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy import signal

from midilm.listen import audio
from midilm.listen.plan import create_test, draw_sessions, participant_ids
from midilm.listen.testdir import ListeningTest
from tests.listen.conftest import MODELS, short_spec


def plan_rows(folder: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((folder / "plan.csv").read_text())))


def test_every_participant_hears_every_condition_blinded(
    planned: tuple[Path, ListeningTest],
) -> None:
    folder, test = planned
    conditions = Counter(s.condition for s in test.stimuli.values())
    assert conditions == {"gpt": 2, "mamba": 2, "real": 3, "anchor": 1}
    for participant, ids in test.sessions.items():
        heard = Counter(test.stimuli[i].condition for i in ids)
        assert heard == {"gpt": 1, "mamba": 1, "real": 1, "anchor": 1}, participant
    for stimulus in test.stimuli.values():
        # the id says nothing of the source: no model, item or file name in it
        assert stimulus.id.startswith("s") and len(stimulus.id) == 13
        for word in (stimulus.condition, stimulus.item, "sample", "jigs", "reel"):
            assert word not in stimulus.id
        assert stimulus.file == f"audio/{stimulus.id}.mp3"
        data, rate = soundfile.read(folder / stimulus.file)
        assert abs(len(data) / rate - stimulus.seconds) < 0.1
        assert stimulus.seconds <= 1.5 + 0.06  # clip_seconds (+ MP3 frame padding)
    assert {p.name for p in (folder / "audio").iterdir()} == {f"{i}.mp3" for i in test.stimuli}
    links = (folder / "links.csv").read_text()
    for participant in test.sessions:
        assert test.link(participant) in links
        assert test.token(participant) not in json.dumps(list(test.sessions.values()))


def test_sessions_depend_on_the_seed_only_and_rotate_through_items(
    planned: tuple[Path, ListeningTest],
) -> None:
    _, test = planned
    stimuli = list(test.stimuli.values())
    names = participant_ids(6)
    first = draw_sessions(stimuli, names, short_spec())
    assert draw_sessions(stimuli, names, short_spec()) == first
    assert draw_sessions(stimuli, names, short_spec(seed=12)) != first
    # more participants leave the first ones' sessions as they were
    assert draw_sessions(stimuli, participant_ids(9), short_spec())["p006"] == first["p006"]
    # each item of a condition is heard equally often (rotation through a seeded shuffle)
    counts = Counter(
        test.stimuli[i].item
        for ids in first.values()
        for i in ids
        if test.stimuli[i].condition == "gpt"
    )
    assert sorted(counts.values()) == [3, 3]
    # orders differ between participants
    assert len({tuple(test.stimuli[i].condition for i in ids) for ids in first.values()}) > 1


def test_the_plan_is_reproducible_apart_from_the_secret(
    listen_repo: Path, tmp_path: Path, planned: tuple[Path, ListeningTest]
) -> None:
    folder, _ = planned
    again = create_test(listen_repo, tmp_path / "again", MODELS, 3, short_spec(), secret="other")
    strip = [{k: v for k, v in row.items() if k != "stimulus"} for row in plan_rows(folder)]
    assert strip == [
        {k: v for k, v in row.items() if k != "stimulus"} for row in plan_rows(tmp_path / "again")
    ]
    assert {s.id for s in again.stimuli.values()}.isdisjoint(
        {row["stimulus"] for row in plan_rows(folder)}
    )
    for row in plan_rows(folder):  # identical audio for the same source, whatever the id
        twin = next(
            s
            for s in again.stimuli.values()
            if (s.condition, s.item) == (row["condition"], row["item"])
        )
        assert (folder / "audio" / f"{row['stimulus']}.mp3").read_bytes() == (
            tmp_path / "again" / twin.file
        ).read_bytes()


def test_refusals_name_the_problem(
    listen_repo: Path, tmp_path: Path, planned: tuple[Path, ListeningTest]
) -> None:
    folder, _ = planned
    with pytest.raises(FileExistsError, match="already planned"):
        create_test(listen_repo, folder, MODELS, 2, short_spec())
    with pytest.raises(ValueError, match="clash"):
        create_test(listen_repo, tmp_path / "t1", ["real", "gpt"], 2, short_spec())
    with pytest.raises(ValueError, match="no rendered real pieces"):
        create_test(tmp_path, tmp_path / "t2", MODELS, 2, short_spec())
    with pytest.raises(ValueError, match="real_per_participant"):
        short_spec(real_per_participant=0)


def test_a_model_without_audio_is_left_out_and_named(listen_repo: Path, tmp_path: Path) -> None:
    test = create_test(listen_repo, tmp_path / "t", [*MODELS, "llama"], 2, short_spec())
    assert "llama" not in {s.condition for s in test.stimuli.values()}
    left_out = json.loads((tmp_path / "t" / "test.json").read_text())["left_out"]
    assert any("llama" in line and "render@llama" in line for line in left_out)


def tone_mix(rate: int = 22050, seconds: float = 2.0) -> np.ndarray:
    """A 440 Hz + 6 kHz mixture with a rising envelope (segments are told apart by level)."""
    t = np.arange(int(rate * seconds)) / rate
    envelope = np.linspace(0.1, 1.0, len(t))
    return (envelope * (np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * 6000 * t)))[:, None]


def band_power(x: np.ndarray, rate: int, low: float, high: float) -> float:
    freqs, power = signal.welch(x[:, 0], fs=rate, nperseg=2048)
    return float(power[(freqs >= low) & (freqs < high)].sum())


def test_anchor_steps_shuffle_filter_and_add_noise() -> None:
    rate = 16000  # 0.25 s = 4000 frames: 2 s is 8 whole segments
    data = tone_mix(rate)
    rng = np.random.default_rng(0)
    shuffled = audio.shuffle_segments(data, rate, 0.25, rng)
    size = round(0.25 * rate)

    def levels(x: np.ndarray) -> list[float]:  # peak of each segment's middle (fades excluded)
        return [
            float(np.abs(x[i + size // 4 : i + 3 * size // 4]).max())
            for i in range(0, len(x), size)
        ]

    assert len(shuffled) == len(data) and levels(shuffled) != sorted(levels(shuffled))
    assert sorted(levels(shuffled)) == pytest.approx(sorted(levels(data)))  # same segments
    filtered = audio.lowpass(data, rate, 3500.0)
    assert band_power(filtered, rate, 5500, 6500) < 1e-3 * band_power(data, rate, 5500, 6500)
    assert band_power(filtered, rate, 400, 480) > 0.9 * band_power(data, rate, 400, 480)
    noisy = audio.add_noise(filtered, 10.0, np.random.default_rng(1))
    snr = 10 * np.log10(np.mean(filtered**2) / np.mean((noisy - filtered) ** 2))
    assert snr == pytest.approx(10.0, abs=0.3)
    anchor = audio.degrade(data, rate, 5, 0.25, 3500.0, 10.0)
    assert np.array_equal(anchor, audio.degrade(data, rate, 5, 0.25, 3500.0, 10.0))
    assert not np.array_equal(anchor, audio.degrade(data, rate, 6, 0.25, 3500.0, 10.0))
    assert np.abs(anchor).max() == pytest.approx(audio.PEAK)


def test_clip_cuts_with_a_fade_and_keeps_short_clips() -> None:
    rate, data = 22050, tone_mix(seconds=3.0)
    cut = audio.clip(data, rate, 2.0)
    assert len(cut) == 2 * rate and abs(cut[-1, 0]) < 1e-3
    assert audio.clip(data, rate, 5.0) is data


def test_unreadable_audio_is_refused_with_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"fLaC but not really")
    with pytest.raises(ValueError, match=r"bad\.flac: not readable audio"):
        audio.read_audio(bad)
