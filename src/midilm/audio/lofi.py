"""Seed 001's lo-fi mix: a piano piece at a tempo drawn from a range, drums on the percussion
channel, a looped vinyl layer, a gain per layer, the loops repeated to the piano's length, the
mix repeated to the requested length, a fade-out, then loudness normalization.

Deterministic for a seed. Where this departs from seed 001's code (its genMusic.py): every layer
is first brought to one loudness so the gains are relative (seed 001 added dB to raw levels and
let int16 clip), the piano segment is padded to whole drum loops so the groove does not restart
mid-bar when the mix repeats, drum loops keep their release tails across repeats, the mix is cut
to exactly the requested length (seed 001 kept whole repeats), and the drums play at the piece's
tempo (seed 001 played its drum tokens at a fixed 130 BPM).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import symusic

from midilm.audio.pcm import (
    LOUDNESS_MEASURE,
    apply_gain_db,
    fade_out,
    fit_length,
    loop_to,
    normalize_loudness,
    seconds_of,
    write_audio,
)
from midilm.audio.render import MidiRenderError, check_renderable, load_score, render_score
from midilm.audio.soundfont import resolve_soundfont
from midilm.audio.vinyl import REVOLUTION_SECONDS, choose_loop, synthesize_vinyl
from midilm.specs.audio import AudioSpec, DrumPatternSpec, load_audio_spec

DEFAULT_QPM = 120.0  # MIDI's tempo when a file sets none
PATTERN_LABEL = "boom-bap pattern (built in)"


def lofi_mix(
    piano_midi: str | Path,
    out_path: str | Path,
    seconds: float,
    seed: int,
    drums_midi: str | Path | None = None,
    loops_dir: str | Path | None = None,
    spec: AudioSpec | None = None,
    *,
    drums_label: str | None = None,
) -> dict[str, Any]:
    """Mix `piano_midi` into a lo-fi track of `seconds` at `out_path` (.flac, .mp3 or .wav).

    Drums: `drums_midi` (a drum model's sample or the user's file; `drums_label` says which),
    else the built-in boom-bap pattern at the piece's tempo. Vinyl: a loop from `loops_dir`,
    else one synthesized from `seed`. Returns the mix's metadata."""
    spec = spec or load_audio_spec()
    lofi = spec.lofi
    if seconds <= 0:
        raise ValueError(f"lofi mix of {seconds} s: the length must be positive")
    rate = spec.sample_rate
    soundfont = resolve_soundfont(spec.soundfont)
    tempo_rng, vinyl_rng, loop_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    tempi = lofi.tempi()
    tempo = float(tempi[int(tempo_rng.integers(len(tempi)))])

    piano_score = load_score(piano_midi)
    source_qpm = first_qpm(piano_score)
    piano_score = piano_layer(piano_score, lofi.piano_program, piano_midi)
    piano = render_score(at_tempo(piano_score, tempo), soundfont, rate, spec.gain)

    if drums_midi is not None:
        drum_score = at_tempo(as_percussion(load_score(drums_midi)), tempo)
        drum_loop = loop_seconds(drum_score)
        drums_meta = {
            "source": "midi",
            "label": drums_label or "drum MIDI",
            "midi": str(drums_midi),
        }
    else:
        drum_score, drum_loop = boom_bap(lofi.drums, tempo)
        drums_meta = {"source": "pattern", "label": PATTERN_LABEL, "midi": None}
    drum_period = round(drum_loop * rate)
    drum_bar = round(tick_seconds(drum_score, bar_ticks(drum_score)) * rate)
    drums = render_score(drum_score, soundfont, rate, spec.gain)

    if loops_dir is not None:
        loop_file, vinyl = choose_loop(loops_dir, rate, loop_rng)
        vinyl_meta: dict[str, Any] = {"source": "loops folder", "file": str(loop_file)}
    else:
        vinyl = synthesize_vinyl(lofi.vinyl, rate, vinyl_rng)
        vinyl_meta = {"source": "synthesized", "revolutions": lofi.vinyl.revolutions,
                      "revolution_seconds": round(REVOLUTION_SECONDS, 3)}  # fmt: skip
    vinyl_meta["loop_seconds"] = seconds_of(vinyl, rate)

    # the piano's length, rounded up to whole drum loops (whole bars when the loop is longer),
    # so the groove goes on across the mix's repeats
    unit = drum_period if drum_period <= piano.shape[0] else drum_bar
    segment = math.ceil(piano.shape[0] / unit) * unit
    gains = lofi.gains_db
    layers = {
        "piano": fit_length(piano, segment),
        "drums": loop_to(drums, segment, drum_period),
        "vinyl": loop_to(vinyl, segment),
    }
    levels: dict[str, Any] = {}
    mix = np.zeros((segment, 2), dtype=np.float32)
    for name, layer in layers.items():
        layer, level = normalize_loudness(layer, rate, lofi.layer_lufs, math.inf)
        mix += apply_gain_db(layer, getattr(gains, name))
        levels[name] = {"lufs_raw": level["lufs_in"], "gain_db": getattr(gains, name)}

    total = round(seconds * rate)
    track = fade_out(loop_to(mix, total, segment), round(lofi.fade_seconds * rate))
    track, loudness = normalize_loudness(track, rate, lofi.loudness_lufs, lofi.peak_dbfs)
    write_audio(out_path, track, rate, spec.mp3_quality)
    return {
        "path": str(out_path),
        "seed": seed,
        "seconds": seconds_of(track, rate),
        "sample_rate": rate,
        "tempo_bpm": tempo,
        "segment_seconds": seconds_of(mix, rate),
        "repeats": round(total / segment, 3),
        "piano": {
            "midi": str(piano_midi),
            "program": lofi.piano_program,
            "source_qpm": round(source_qpm, 3),
            "seconds": seconds_of(piano, rate),
        },
        "drums": {**drums_meta, "loop_seconds": round(drum_period / rate, 3)},
        "vinyl": vinyl_meta,
        "layers": levels,  # each brought to layer_lufs, then its gain
        "layer_lufs": lofi.layer_lufs,
        "fade_seconds": lofi.fade_seconds,
        "loudness": {"measure": LOUDNESS_MEASURE, "target_lufs": lofi.loudness_lufs, **loudness},
        "soundfont": {"name": soundfont.name, "sha256": soundfont.sha256()},
    }


def first_qpm(score: symusic.Score) -> float:
    tempos = sorted(score.tempos, key=lambda t: t.time)
    return float(tempos[0].qpm) if tempos else DEFAULT_QPM


def at_tempo(score: symusic.Score, qpm: float) -> symusic.Score:
    """A copy whose tempo map starts at `qpm` (later changes scaled alike)."""
    out = score.copy()
    if len(out.tempos) == 0:
        out.tempos.append(symusic.Tempo(0, qpm=qpm))
        return out
    factor = qpm / first_qpm(out)
    for tempo in out.tempos:
        tempo.qpm = tempo.qpm * factor
    return out


def piano_layer(score: symusic.Score, program: int | None, where: str | Path) -> symusic.Score:
    """The pitched tracks, each set to `program` (None keeps the file's)."""
    out = score.copy()
    out.tracks = [t for t in out.tracks if not t.is_drum and t.note_num() > 0]
    if len(out.tracks) == 0:
        raise MidiRenderError(
            f"{where}: no pitched (non-drum) track with notes for the piano layer"
        )
    if program is not None:
        for track in out.tracks:
            track.program = program
    return out


def as_percussion(score: symusic.Score) -> symusic.Score:
    """Every track on the percussion channel (drum models and users' drum files alike)."""
    out = score.copy()
    for track in out.tracks:
        track.is_drum = True
    return out


def boom_bap(pattern: DrumPatternSpec, qpm: float) -> tuple[symusic.Score, float]:
    """One loop of the plain boom-bap pattern at `qpm` (GM kit: kick, snare, closed hat) and
    the loop's length in seconds (the whole pattern, however its last hit falls)."""
    tpq = 480
    if tpq % pattern.steps_per_beat:
        raise ValueError(f"drums.steps_per_beat={pattern.steps_per_beat} must divide {tpq}")
    step = tpq // pattern.steps_per_beat
    off_beat = pattern.steps_per_beat // 2 if pattern.steps_per_beat % 2 == 0 else None
    score = symusic.Score(tpq)
    score.tempos.append(symusic.Tempo(0, qpm=qpm))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    track = symusic.Track("boom-bap", program=0, is_drum=True)
    kick_v, snare_v, hat_v = pattern.velocities
    voices = (
        (pattern.kick, pattern.kick_note, kick_v),
        (pattern.snare, pattern.snare_note, snare_v),
        (pattern.hat, pattern.hat_note, hat_v),
    )
    for steps, note, velocity in voices:
        for index in steps:
            if not 0 <= index < pattern.steps:
                raise ValueError(f"drums: step {index} outside 0..{pattern.steps - 1}")
            within_beat = index % pattern.steps_per_beat
            late = off_beat is not None and within_beat == off_beat
            time = index * step + (round(pattern.swing * off_beat * step) if late else 0)
            soft = note == pattern.hat_note and within_beat != 0
            track.notes.append(
                symusic.Note(time, step, note, round(velocity * (0.8 if soft else 1)))
            )
    track.notes.sort(key=lambda n: (n.time, n.pitch))
    score.tracks.append(track)
    check_renderable(score, "boom-bap pattern")
    return score, tick_seconds(score, pattern.steps * step)


def bar_ticks(score: symusic.Score) -> int:
    """One bar in ticks by the score's first time signature (4/4 when it has none)."""
    signature = score.time_signatures[0] if len(score.time_signatures) else None
    numerator, denominator = (signature.numerator, signature.denominator) if signature else (4, 4)
    return max(1, round(score.tpq * numerator * 4 / denominator))


def loop_seconds(score: symusic.Score) -> float:
    """A drum file's loop period: its end rounded up to a whole bar, in seconds."""
    bar = bar_ticks(score)
    return tick_seconds(score, max(1, math.ceil(score.end() / bar)) * bar)


def tick_seconds(score: symusic.Score, tick: int) -> float:
    """Seconds at `tick` through the score's tempo map (symusic's own conversion)."""
    probe = symusic.Score(score.tpq)
    probe.tempos = score.tempos.copy()
    probe.markers.append(symusic.TextMeta(tick, "probe"))
    return float(probe.to("second").markers[0].time)
