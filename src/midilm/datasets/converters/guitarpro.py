"""GuitarPro (.gp3/.gp4/.gp5) to MIDI with pyguitarpro: one MIDI track per GuitarPro track,
bends written as pitch-bend events (range +-2 semitones, the General MIDI default)."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

import guitarpro as gp
from symusic import Note, PitchBend, Score, Tempo, TimeSignature, Track

from midilm.datasets.inputs import read_input
from midilm.datasets.music21_export import SourceError
from midilm.datasets.sources import PieceTask
from midilm.specs.dataset import FilterSpec

GP_TPQ = 960  # pyguitarpro's ticks per quarter; beats start at 960
BEND_RANGE_SEMITONES = 2
BEND_PER_SEMITONE = 8192 // BEND_RANGE_SEMITONES
QUARTER_TONES_PER_SEMITONE = 2  # a pyguitarpro bend value unit is a quarter tone


@dataclass(frozen=True)
class GuitarProOptions:
    """DadaGP filters of seed 004: keep songs by these artists; keep only tracks that bend."""

    artists: tuple[str, ...] | None = None
    bend_tracks_only: bool = False

    @classmethod
    def from_json(cls, text: str) -> GuitarProOptions:
        raw = json.loads(text or "{}")
        artists = raw.get("artists")
        return cls(
            artists=tuple(a.casefold() for a in artists) if artists else None,
            bend_tracks_only=bool(raw.get("bend_tracks_only", False)),
        )


def bend_value(semitones: float) -> int:
    """Semitones of bend to a MIDI pitch-bend value, clipped to -8192..8191."""
    return max(-8192, min(8191, round(semitones * BEND_PER_SEMITONE)))


def _beats(track: gp.Track) -> Iterable[gp.Beat]:
    for measure in track.measures:
        for voice in measure.voices:
            yield from voice.beats


def _notes(track: gp.Track) -> Iterable[tuple[gp.Beat, gp.Note]]:
    for beat in _beats(track):
        for note in beat.notes:
            yield beat, note


def track_has_bends(track: gp.Track) -> bool:
    return any(note.effect.isBend for _, note in _notes(track))


def convert_track(track: gp.Track) -> Track:
    """Notes (tied notes extend the previous note on their string; dead notes are dropped) and
    one pitch-bend curve per bent note, back to 0 at its end."""
    strings = {s.number: s.value for s in track.strings}
    out = Track(
        name=track.name or "",
        program=0 if track.isPercussionTrack else int(track.channel.instrument),
        is_drum=bool(track.isPercussionTrack),
    )
    notes: list[list[int]] = []  # [time, duration, pitch, velocity]; symusic copies on append
    last_on_string: dict[int, list[int]] = {}
    for beat, note in _notes(track):
        start, length = beat.start - GP_TPQ, beat.duration.time
        if start < 0 or length <= 0:
            raise SourceError("bad_duration", f"a beat at tick {start} lasts {length} ticks")
        if note.type == gp.NoteType.tie and note.string in last_on_string:
            held = last_on_string[note.string]
            held[1] = start + length - held[0]
            continue
        if note.type in (gp.NoteType.dead, gp.NoteType.rest, gp.NoteType.tie):
            continue
        pitch = strings.get(note.string, 0) + note.value
        if not 0 <= pitch <= 127:
            continue
        made = [start, length, pitch, max(1, min(127, int(note.velocity)))]
        notes.append(made)
        last_on_string[note.string] = made
        if note.effect.isBend:
            for point in note.effect.bend.points:
                semis = point.value / QUARTER_TONES_PER_SEMITONE
                out.pitch_bends.append(PitchBend(start + point.getTime(length), bend_value(semis)))
            out.pitch_bends.append(PitchBend(start + length, 0))
    for time, duration, pitch, velocity in sorted(notes):
        out.notes.append(Note(time, duration, pitch, velocity))
    out.pitch_bends.sort(key=lambda b: b.time)
    return out


def checked_qpm(value: object, filters: FilterSpec | None) -> float:
    """A GuitarPro tempo as qpm; `bad_tempo` when it is not finite or outside the filters."""
    qpm = float(value)  # type: ignore[arg-type]
    low, high = (filters.min_qpm, filters.max_qpm) if filters else (0.0, math.inf)
    if not (math.isfinite(qpm) and low <= qpm <= high and qpm > 0):
        raise SourceError("bad_tempo", f"tempo {qpm!r} qpm is outside [{low:g}, {high:g}]")
    return qpm


def song_to_score(
    song: gp.Song, bend_tracks_only: bool = False, filters: FilterSpec | None = None
) -> Score:
    """The song in score order (repeats are not expanded), with its tempo changes and meters."""
    score = Score(GP_TPQ)
    score.tempos.append(Tempo(0, qpm=checked_qpm(song.tempo, filters)))
    meter = None
    for header in song.measureHeaders:
        sig = header.timeSignature
        now = (sig.numerator, sig.denominator.value)
        if now != meter:
            score.time_signatures.append(TimeSignature(header.start - GP_TPQ, *now))
            meter = now
    for beat in _beats(song.tracks[0]) if song.tracks else ():  # tempo changes sit on beats
        mix = beat.effect.mixTableChange
        if mix is not None and mix.tempo is not None and mix.tempo.value > 0:
            qpm = checked_qpm(mix.tempo.value, filters)
            score.tempos.append(Tempo(beat.start - GP_TPQ, qpm=qpm))
    for track in song.tracks:
        if bend_tracks_only and not track_has_bends(track):
            continue
        score.tracks.append(convert_track(track))
    score.tempos.sort(key=lambda t: t.time)
    return score


def guitarpro_task_to_midi(task: PieceTask, filters: FilterSpec) -> bytes:
    """Read `task.ref` with pyguitarpro; the options may reject the song (artist filter)."""
    options = GuitarProOptions.from_json(task.options)
    data = read_input(task.ref, filters.max_file_bytes)
    try:
        song = gp.parse(io.BytesIO(data))
    except Exception as error:
        raise SourceError("parse_error", f"pyguitarpro: {type(error).__name__}: {error}") from error
    if options.artists is not None and (song.artist or "").casefold() not in options.artists:
        raise SourceError("excluded", f"artist {song.artist!r} not in the options' artists list")
    return song_to_score(song, options.bend_tracks_only, filters).dumps_midi()
