"""Rendering speed: seconds of audio per second of wall time, for midilm.audio's full path (symusic
parse and cut, FluidSynth float render, BS.1770 loudness normalization, FLAC + MP3 encoding)
against FluidSynth's own CLI render to a 16-bit WAV of the same MIDI files (anchor, same run).

    python benchmarks/bench_render.py [--root /work/shared/datasets] [--limit 8] [--seconds 60]

The pieces are GiantMIDI-Piano's ground-truth MIDI files, cut to their first `--seconds` (as the
render stage cuts references). Each pass is timed `--repeats` times (interleaved); the fastest
wall time is kept, with its CPU time (this process + FluidSynth children), which a shared
machine disturbs less. The full path is also split into its steps (render, normalize, FLAC,
MP3), in CPU seconds.
Writes benchmarks/results/render.json.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_result

from midilm.audio.pcm import normalize_loudness, write_audio
from midilm.audio.render import (
    clip_seconds,
    fluidsynth_binary,
    fluidsynth_version,
    load_score,
    render_midi,
    render_score,
)
from midilm.audio.soundfont import resolve_soundfont
from midilm.specs.audio import AudioSpec, load_audio_spec

GIANT = "giantmidi_piano_eval/midis_for_evaluation/ground_truth"


def cut_pieces(root: Path, limit: int, seconds: float, out: Path) -> list[Path]:
    files = sorted((root / GIANT).glob("*.mid"))[:limit]
    if not files:
        raise SystemExit(f"{root / GIANT}: no MIDI files (pass --root)")
    cut = []
    for index, path in enumerate(files):
        target = out / f"piece_{index:02d}.mid"
        clip_seconds(load_score(path), seconds).dump_midi(str(target))
        cut.append(target)
    return cut


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (FluidSynth runs as a child)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def anchor_pass(midis: list[Path], spec: AudioSpec, out: Path) -> tuple[float, float, float]:
    """FluidSynth's CLI alone: (wall seconds, CPU seconds, seconds of audio written)."""
    soundfont = resolve_soundfont(spec.soundfont)
    start, cpu, frames = time.perf_counter(), cpu_seconds(), 0
    for midi in midis:
        wav = out / f"{midi.stem}.wav"
        subprocess.run(
            [fluidsynth_binary(), "-ni", "-q", "-R", "0", "-C", "0", "-g", f"{spec.gain:g}",
             "-r", str(spec.sample_rate), "-T", "wav", "-O", "s16", "-F", str(wav),
             str(soundfont.path), str(midi)],
            check=True,
        )  # fmt: skip
        frames += soundfile.info(str(wav)).frames
    return time.perf_counter() - start, cpu_seconds() - cpu, frames / spec.sample_rate


def full_pass(midis: list[Path], spec: AudioSpec, out: Path) -> tuple[float, float, float]:
    """midilm.audio.render_midi: (wall seconds, CPU seconds, seconds of audio written)."""
    start, cpu, seconds = time.perf_counter(), cpu_seconds(), 0.0
    for midi in midis:
        seconds += render_midi(midi, out / midi.stem, spec)["seconds"]
    return time.perf_counter() - start, cpu_seconds() - cpu, seconds


def steps(midis: list[Path], spec: AudioSpec, out: Path) -> dict[str, float]:
    """CPU seconds of each step of the full path (FluidSynth's child included), summed over
    the files."""
    soundfont = resolve_soundfont(spec.soundfont)
    totals = dict.fromkeys(("render", "normalize", "flac", "mp3"), 0.0)
    for midi in midis:
        marks = [cpu_seconds()]
        audio = render_score(load_score(midi), soundfont, spec.sample_rate, spec.gain)
        marks.append(cpu_seconds())
        audio, _ = normalize_loudness(audio, spec.sample_rate, -20.0, -1.0)
        marks.append(cpu_seconds())
        write_audio(out / "step.flac", audio, spec.sample_rate)
        marks.append(cpu_seconds())
        write_audio(out / "step.mp3", audio, spec.sample_rate, spec.mp3_quality)
        marks.append(cpu_seconds())
        for name, a, b in zip(totals, marks, marks[1:], strict=False):
            totals[name] += b - a
    return {k: round(v, 3) for k, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=Path("/work/shared/datasets"))
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    env = environment()
    spec = load_audio_spec()
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        tmp_path = Path(tmp)
        midis = cut_pieces(args.root, args.limit, args.seconds, tmp_path)
        runs: dict[str, list[tuple[float, float, float]]] = {"anchor": [], "full": []}
        for _ in range(args.repeats):  # interleaved, so both see the same machine load
            runs["anchor"].append(anchor_pass(midis, spec, tmp_path))
            runs["full"].append(full_pass(midis, spec, tmp_path))
        breakdown = steps(midis, spec, tmp_path)
    result: dict = {"environment": env, "settings": {}, "runs": {}}
    for name, label in (
        ("anchor", "fluidsynth CLI -> 16-bit WAV"),
        ("full", "midilm.audio.render_midi -> FLAC + MP3"),
    ):
        wall, cpu, audio_s = min(runs[name])
        result["runs"][name] = {
            "what": label,
            "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3),
            "audio_s": round(audio_s, 3),
            "audio_s_per_wall_s": round(audio_s / wall, 1),
            "audio_s_per_cpu_s": round(audio_s / cpu, 1),
            "all_wall_s": [round(w, 3) for w, _, _ in runs[name]],
        }
    full, anchor = result["runs"]["full"], result["runs"]["anchor"]
    result["full_vs_anchor_speed"] = {
        "wall": round(full["audio_s_per_wall_s"] / anchor["audio_s_per_wall_s"], 3),
        "cpu": round(full["audio_s_per_cpu_s"] / anchor["audio_s_per_cpu_s"], 3),
    }
    result["full_path_steps_cpu_s"] = breakdown
    result["settings"] = {
        "files": len(midis),
        "cut_seconds": args.seconds,
        "repeats": args.repeats,
        "soundfont": spec.soundfont,
        "synthesizer": fluidsynth_version(),
        "sample_rate": spec.sample_rate,
        "mp3_quality": spec.mp3_quality,
        "source": GIANT,
    }
    env["versions"].update(
        {p: _version(p) for p in ("soundfile", "pyloudnorm", "basic-pitch", "onnxruntime")}
    )
    write_result("render", result)


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
