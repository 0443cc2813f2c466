"""Seed 001's metrics on real Bach chorales exported to MIDI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from music21 import meter, stream

from midilm.evaluate import metrics


@pytest.fixture(scope="module")
def chorales(chorale_midis: list[Path]) -> list[stream.Score]:
    return [metrics.load_score(path, 256) for path in chorale_midis[:4]]


def test_rhythm_consistency_lies_in_the_unit_interval(chorales: list[stream.Score]) -> None:
    for score in chorales:
        assert 0 < metrics.rhythm_consistency(score) <= 1


def test_equal_durations_give_perfect_rhythm_consistency() -> None:
    part = stream.Part()
    for i, name in enumerate(["C4", "E4", "G4", "C5"]):
        part.insert(float(i), metrics.note.Note(name, quarterLength=1.0))
    assert metrics.rhythm_consistency(part) == 1.0
    assert math.isnan(metrics.rhythm_consistency(stream.Part()))


def test_consonance_and_dissonance_ratios_sum_to_one(chorales: list[stream.Score]) -> None:
    for score in chorales:
        consonance, dissonance = metrics.harmonic_coherence(score)
        assert 0 <= consonance <= 1
        assert consonance + dissonance == pytest.approx(1.0)


def test_a_chorale_matches_itself_and_not_its_transposition(chorales: list[stream.Score]) -> None:
    score = chorales[0]
    shifted = score.transpose(1)
    assert metrics.melodic_similarity(score, score) == 1.0
    assert metrics.melodic_similarity(score, shifted) == 0.0
    assert metrics.rhythm_consistency(shifted) == metrics.rhythm_consistency(score)


def test_skip_drops_the_shared_prompt() -> None:
    events = [(0.0, 60), (0.0, 64), (1.0, 62), (2.0, 67)]
    assert metrics.top_melody(events) == [64, 62, 67]
    assert metrics.top_melody(events, skip=2) == [62, 67]
    assert metrics.melody_similarity([1, 2, 3], [1, 5]) == 0.5


def test_a_modulating_piece_has_more_key_changes(chorale_midis: list[Path], tmp_path: Path) -> None:
    plain = metrics.load_score(chorale_midis[0])
    shifted = metrics.load_score(chorale_midis[0]).transpose(6)  # a tritone away
    length = plain.highestTime
    both = stream.Score()
    for i, (first, second) in enumerate(zip(plain.parts, shifted.parts, strict=True)):
        part = stream.Part()
        if i == 0:  # keep the chorale's metre, so windows span the same measures
            part.insert(0, meter.TimeSignature(f"{metrics.bar_quarter_length(plain):g}/4"))
        for offset, n in [(n.offset, n) for n in first.flatten().notes]:
            part.insert(offset, n)
        for offset, n in [(length + n.offset, n) for n in second.flatten().notes]:
            part.insert(offset, n)
        both.insert(0, part)
    path = tmp_path / "modulating.mid"
    both.write("midi", fp=str(path))

    base = metrics.key_changes(metrics.load_score(chorale_midis[0]), 4)
    modulating = metrics.key_changes(metrics.load_score(path), 4)
    assert isinstance(base, int) and base >= 0
    assert modulating > base


def test_truncation_keeps_the_first_quarter_notes(chorale_midis: list[Path]) -> None:
    score = metrics.load_score(chorale_midis[0], 8)
    assert score.highestTime <= 8
    assert len(score.recurse().notes) > 0


def test_pitch_class_consonance_agrees_with_music21_on_spelled_chorales() -> None:
    from music21 import chord, corpus

    for name in ["bach/bwv269", "bach/bwv347"]:
        for sonority in corpus.parse(name).chordify().recurse().getElementsByClass(chord.Chord):
            assert metrics.is_consonant(sonority) == sonority.isConsonant()


def test_pitch_class_consonance_ignores_midi_spelling() -> None:
    from music21 import chord

    a_flat = chord.Chord(["G#3", "C4", "E-4"])  # how MIDI import spells an A-flat triad
    assert not a_flat.isConsonant()
    assert metrics.is_consonant(a_flat)
    assert not metrics.is_consonant(chord.Chord(["G4", "C5", "E5"]))  # second inversion
    assert not metrics.is_consonant(chord.Chord(["C4", "F4"]))  # a fourth above the bass
