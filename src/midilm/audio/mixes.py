"""A few lo-fi mixes of one model's samples, written as one set (the lofi stage's work): the
first `lofi.mixes` samples that mix, each with its own seed, drums from a drum model's samples
when given, and a lofi.json listing them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import soundfile

from midilm.audio.lofi import PATTERN_LABEL, lofi_mix
from midilm.audio.pcm import write_audio
from midilm.audio.render import MidiRenderError, load_score, read_samples, sample_midi_path
from midilm.audio.soundfont import AudioToolMissing
from midilm.common.io import atomic_dir, write_json_atomic
from midilm.common.logging import get_logger
from midilm.common.paths import relpath
from midilm.common.seeding import derive_seed
from midilm.specs.audio import AudioSpec

log = get_logger(__name__)

MIX_ERRORS = (MidiRenderError, ValueError, RuntimeError)  # a hostile file, not the machine


def write_lofi_mixes(
    samples_json: str | Path,
    out_dir: str | Path,
    spec: AudioSpec,
    seed: int,
    root: str | Path = ".",
    drums_samples_json: str | Path | None = None,
    loops_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Mix the first `spec.lofi.mixes` samples of `samples_json` that mix (bad ones are listed
    with their error) into `out_dir`/mix_NNN.flac and .mp3 plus lofi.json, written whole or not
    at all. Drums: the samples of `drums_samples_json` in turn (a drum model), else the
    boom-bap pattern; a drum sample that fails falls back to the pattern, noted."""
    samples_json, out_dir, root = Path(samples_json), Path(out_dir), Path(root)
    listing = read_samples(samples_json)
    pianos = [sample_midi_path(s, samples_json, root) for s in listing["samples"]]
    drums: list[tuple[Path, str]] = []
    if drums_samples_json is not None:
        drum_listing = read_samples(Path(drums_samples_json))
        for sample in drum_listing["samples"]:
            path = sample_midi_path(sample, Path(drums_samples_json), root)
            if path is not None:
                drums.append((path, f"drum model {drum_listing.get('model')}: {path.name}"))
    mixes: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    with atomic_dir(out_dir) as tmp:
        for piano in pianos:
            if len(mixes) == spec.lofi.mixes:
                break
            if piano is None:
                continue
            index = len(mixes)
            name, drum = f"mix_{index:03d}", drums[index % len(drums)] if drums else None
            try:
                mix_seed = derive_seed(seed, "lofi mix", index)
                meta = _mix(piano, tmp / f"{name}.flac", spec, mix_seed, drum, loops_dir)
            except AudioToolMissing:
                raise
            except MIX_ERRORS as exc:
                log.warning("lofi: %s: %s", piano, exc)
                failed.append({"piano": relpath(piano, root), "error": str(exc)})
                continue
            pcm, rate = soundfile.read(str(tmp / f"{name}.flac"), dtype="float32")
            write_audio(tmp / f"{name}.mp3", pcm, rate, spec.mp3_quality)
            del meta["path"]  # the temporary folder's; flac and mp3 say where the mix lies
            meta["piano"]["midi"] = relpath(piano, root)
            if meta["drums"]["midi"] is not None:
                meta["drums"]["midi"] = relpath(Path(meta["drums"]["midi"]), root)
            flac, mp3 = (relpath(out_dir / f"{name}{s}", root) for s in (".flac", ".mp3"))
            mixes.append({"id": name, "flac": flac, "mp3": mp3, **meta})
        result = {
            "model": listing.get("model"),
            "seed": seed,
            "seconds": spec.lofi.seconds,
            "mixes": mixes,
            "failed": failed,
        }
        write_json_atomic(tmp / "lofi.json", result)
    if len(mixes) < spec.lofi.mixes:
        log.warning("lofi %s: %d of %d mixes (%d samples failed)", out_dir, len(mixes),
                    spec.lofi.mixes, len(failed))  # fmt: skip
    return result


def _mix(
    piano: Path,
    out: Path,
    spec: AudioSpec,
    seed: int,
    drum: tuple[Path, str] | None,
    loops_dir: str | Path | None,
) -> dict[str, Any]:
    """One mix; a drum sample that cannot be read gives way to the pattern, noted."""
    drum_path, label, failure = (drum[0], drum[1], None) if drum else (None, None, None)
    if drum_path is not None:
        try:
            load_score(drum_path)
        except MidiRenderError as exc:
            drum_path, label, failure = None, None, str(exc)
    meta = lofi_mix(
        piano, out, spec.lofi.seconds, seed, drum_path, loops_dir, spec, drums_label=label
    )
    if failure:
        meta["drums"]["label"] = f"{PATTERN_LABEL}; the drum sample failed: {failure}"
    return meta
