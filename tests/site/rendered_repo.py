"""A small repository tree with the files the site and the listening test read, made from real
MIDI (Nottingham tunes, a Groove drum beat) rendered with FluidSynth (the SPEC's command).

Stand-ins, said plainly: a "generated sample" is an excerpt of a real tune (no model is trained
here), models/<key>/metrics.json and train_log.csv are written by hand, and the lo-fi "mix" is a
rendered excerpt. Audio, MIDI, piano rolls, metrics from `midilm.evaluate` are all real.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
import soundfile
import symusic

from midilm.common.params import load_params, to_plain
from midilm.evaluate.analysis import PieceItem, analyze_files
from midilm.evaluate.stage import per_piece_csv
from midilm.evaluate.tables import summary_record
from midilm.specs.evaluate import MetricsSpec, evaluate_spec

REPO = Path(__file__).resolve().parents[2]

SOUNDFONTS = (
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Path("/usr/share/sounds/sf2/MuseScore_General_Lite.sf2"),
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
)
TUNES = ("jigs107.mid", "reelsu-z23.mid", "reelsm-q69.mid", "jigs85.mid", "reelsm-q70.mid")
DRUMS = "drummer1/session1/102_funk_95_beat_4-4.mid"


def soundfont() -> Path:
    """A General MIDI soundfont from Debian's packages, or skip (setup.sh installs one as root)."""
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth not installed (run scripts/setup.sh as root)")
    for path in SOUNDFONTS:
        if path.is_file():
            return path
    pytest.skip("no General MIDI soundfont (apt-get install timgm6mb-soundfont)")


def excerpt(source: Path, target: Path, quarters: float) -> Path:
    """The first `quarters` quarter notes of `source` as a MIDI file."""
    score = symusic.Score(str(source))
    score.clip(0, int(score.tpq * quarters), clip_end=True).dump_midi(str(target))
    return target


RATE = 22050  # the SPEC renders at 44100 Hz; half that (and mono) keeps the fixture fast


def render(midi: Path, stem: Path, font: Path) -> dict[str, object]:
    """FluidSynth -> 16-bit WAV -> mono FLAC and MP3 (soundfile); the audio.json fields."""
    wav = stem.with_suffix(".wav")
    # the SPEC's command: reverb and chorus off, so the output is byte-identical across runs
    command = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(RATE)]
    subprocess.run(
        [*command, "-F", str(wav), str(font), str(midi)],
        check=True,
        capture_output=True,
    )
    data, rate = soundfile.read(wav)
    data = data.mean(axis=1)
    wav.unlink()
    soundfile.write(stem.with_suffix(".flac"), data, rate)
    soundfile.write(stem.with_suffix(".mp3"), data, rate, format="MP3")
    return {"seconds": round(len(data) / rate, 3)}


def metrics_spec() -> MetricsSpec:
    """The committed params' per-piece metrics settings."""
    return evaluate_spec(to_plain(load_params(REPO / "params.yaml"))).metrics


def rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def make_rendered_repo(
    root: Path,
    datasets: Path,
    models: Sequence[str] = ("gpt", "mamba"),
    samples_per_model: int = 2,
    quarters: float = 4.0,
    audio_for: Sequence[str] | None = None,
    lofi: bool = True,
    tables_from: Path | None = None,
) -> Path:
    """Write the tree under `root`; models not in `audio_for` get no audio (default: all)."""
    font = soundfont()
    spec = metrics_spec()
    audio_for = list(models) if audio_for is None else list(audio_for)
    tunes = [datasets / "nottingham" / "MIDI" / name for name in TUNES]
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    references = [excerpt(t, raw / f"ref_{t.stem}.mid", quarters * 2) for t in tunes[:3]]
    pool = [*tunes[3:], datasets / "groove" / DRUMS]
    for m_index, key in enumerate(models):
        samples_dir = root / "outputs" / "samples" / key
        samples_dir.mkdir(parents=True)
        samples, items, generated = [], [], []
        for index in range(samples_per_model):
            source = pool[(m_index + index) % len(pool)]
            midi = excerpt(source, samples_dir / f"sample_{index:03d}.mid", quarters)
            reference = references[(m_index + index) % len(references)]
            reference_id = reference.stem.removeprefix("ref_")
            samples.append(
                {
                    "file": midi.name,
                    "path": rel(midi, root),
                    "reference_id": reference_id,
                    "reference_path": rel(reference, root),
                    "prompt_tokens": 32,
                    "prompt_notes": 4,
                    "generated_tokens": 96,
                    "notes": symusic.Score(str(midi)).note_num(),
                    "dropped_tokens": 0,
                }
            )
            generated.append(PieceItem(midi.name, midi))
            if key in audio_for:
                audio = root / "outputs" / "audio" / key
                audio.mkdir(parents=True, exist_ok=True)
                sample_stem = audio / f"sample_{index:03d}"
                ref_stem = audio / f"reference_{index:03d}"
                items.append(
                    {
                        "id": f"sample_{index:03d}",
                        "sample": {
                            "midi": rel(midi, root),
                            "flac": rel(sample_stem.with_suffix(".flac"), root),
                            "mp3": rel(sample_stem.with_suffix(".mp3"), root),
                            **render(midi, sample_stem, font),
                        },
                        "reference": {
                            "id": reference_id,
                            "midi": rel(reference, root),
                            "flac": rel(ref_stem.with_suffix(".flac"), root),
                            "mp3": rel(ref_stem.with_suffix(".mp3"), root),
                            **render(reference, ref_stem, font),
                        },
                    }
                )
        tests = [PieceItem(r.stem.removeprefix("ref_"), r) for r in references]
        frames = {"generated": analyze_files(generated, spec), "test": analyze_files(tests, spec)}
        _json(
            samples_dir / "samples.json",
            {
                "model": key,
                "settings": {"max_new_tokens": 96, "seed": 1234, "temperature": 1.0, "top_k": 0},
                "samples": samples,
            },
        )
        if key in audio_for:
            _json(
                root / "outputs" / "audio" / key / "audio.json",
                {
                    "model": key,
                    "soundfont": {"name": font.name, "sha256": "fixture"},
                    "sample_rate": RATE,
                    "items": items,
                },
            )
        metrics_dir = root / "outputs" / "metrics" / key
        metrics_dir.mkdir(parents=True)
        (metrics_dir / "per_piece.csv").write_text(per_piece_csv(frames))
        _json(
            metrics_dir / "music_metrics.json",
            {"model": key, **{group: summary_record(f) for group, f in frames.items()}},
        )
        model_dir = root / "models" / key
        model_dir.mkdir(parents=True)
        log = ["step,train_loss,val_loss,lr"]
        for step in range(1, 41):
            val = f"{3.0 / (1 + step / (10 + m_index)) + 0.5:.6f}" if step % 10 == 0 else ""
            log.append(f"{step},{3.2 / (1 + step / (8 + m_index)) + 0.4:.6f},{val},0.001")
        (model_dir / "train_log.csv").write_text("\n".join(log) + "\n")
        _json(
            model_dir / "metrics.json",
            {
                "model": key,
                "family": key,
                "parameters": 890240 - 1000 * m_index,
                "steps": 40,
                "train_loss": 1.1,
                "val_loss": 1.2,
                "speed": {"device": "cpu", "train_tokens_per_s": 5000.0},
            },
        )
    if lofi:
        mix_dir = root / "outputs" / "lofi"
        mix_dir.mkdir(parents=True)
        mix = excerpt(tunes[0], mix_dir / "mix_000.mid", quarters)
        fields = render(mix, mix_dir / "mix_000", font)
        _json(
            mix_dir / "lofi.json",
            {
                "mixes": [
                    {
                        "id": "mix_000",
                        "mp3": "outputs/lofi/mix_000.mp3",
                        "flac": "outputs/lofi/mix_000.flac",
                        **fields,
                        "metadata": {"piano": "fixture excerpt", "vinyl_gain_db": -24},
                    }
                ]
            },
        )
    if tables_from is not None:
        tables = root / "reports" / "tables"
        shutil.copytree(tables_from, tables)
    return root


def _json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
