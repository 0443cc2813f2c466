"""MIDICompact's reference mode against MIDI-LLM-tokenizer: the same ids as the reference's own
output on real piano files (fixture), and each of its rules on small hand-made pieces."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import symusic

from midilm.tokenize.midi_channels import load_score
from midilm.tokenize.midicompact import MidiCompactConfig, MidiCompactTokenizer

FIXTURE = Path(__file__).parent / "fixtures" / "midi_llm_tokenizer_piano.json.gz"
# the reference's piano configuration: split at gaps over 10 s, keep segments over 30 s
REF = MidiCompactTokenizer(
    MidiCompactConfig(reference_mode=True, max_silence_s=10.0, min_segment_s=30.0)
)
TOK = MidiCompactTokenizer(MidiCompactConfig(reference_mode=True))


def reference_ids(text: str) -> list[int]:
    """The reference's token string as our ids: its names carry a `p:` (piano) prefix."""
    return [REF.vocab[w.removeprefix("p:")] for w in text.split()]


def test_ids_equal_the_reference_output_on_real_piano_files(shared_datasets: Path) -> None:
    expected = json.loads(gzip.decompress(FIXTURE.read_bytes()))["files"]
    assert len(expected) >= 8
    tokens = 0
    for rel, strings in expected.items():
        segments = REF.encode_segments(load_score(shared_datasets / rel))
        assert segments == [reference_ids(s) for s in strings], rel
        tokens += sum(len(s) for s in segments)
    assert tokens > 50_000
    assert any(len(s) > 1 for s in expected.values())  # a piece cut at a long silence


def names(ids: list[int]) -> str:
    return TOK.to_text(ids)


def score_ms(
    notes: list[tuple[int, int, int, int]],
    controls: list[tuple[int, int, int]] = (),
    program: int = 0,
) -> symusic.Score:
    """One track at 1 tick = 1 ms: (onset, duration, pitch, velocity) notes and (time, number,
    value) control changes."""
    score = symusic.Score(500)
    score.tempos.append(symusic.Tempo(0, qpm=120.0))
    track = symusic.Track("Piano", program, False)
    for onset, dur, pitch, vel in notes:
        track.notes.append(symusic.Note(onset, dur, pitch, vel))
    for time, number, value in controls:
        track.controls.append(symusic.ControlChange(time, number, value))
    score.tracks.append(track)
    return score


def test_waits_are_rounded_per_gap_and_drift() -> None:
    # gaps of 12 ms (1.5 steps) round half down to one step each, so the times drift; a gap
    # under 4 ms rounds to no wait, and its events share a time step, sorted by note
    notes = [(0, 500, 64, 100), (12, 500, 62, 100), (24, 500, 60, 100), (27, 500, 59, 100)]
    text = names(TOK.encode(score_ms(notes)))
    assert text == "40:d t1 3e:d t1 3b:d 3c:d t59 40:0 t1 3e:0 t1 3b:0 3c:0"


def test_leading_silence_is_dropped_and_long_gaps_cut_to_ten_seconds() -> None:
    notes = [(3000, 100, 60, 100), (3000, 15000, 40, 100), (18000, 100, 62, 100)]
    text = names(TOK.encode(score_ms(notes))).split()
    assert text[:4] == ["28:d", "3c:d", "t12", "3c:0"]  # no wait before the first event
    assert text[4:] == ["t125"] * 10 + ["28:0", "3e:d", "t12", "3e:0"]  # 14.9 s cut to 10 s


def test_a_note_struck_again_under_the_pedal_has_no_note_off_between() -> None:
    notes = [(0, 100, 60, 100), (500, 100, 60, 70), (1000, 100, 62, 100)]
    pedal = [(50, 64, 127), (2000, 64, 0)]
    text = names(TOK.encode(score_ms(notes, pedal)))
    assert text == "3c:d t62 3c:b t62 3e:d t125 3c:0 3e:0"


def test_zero_length_and_overlapping_notes_are_written_as_they_come() -> None:
    zero = names(TOK.encode(score_ms([(0, 0, 60, 100), (0, 500, 64, 100)])))
    assert zero == "3c:d 3c:0 40:d t62 40:0"
    overlap = names(TOK.encode(score_ms([(0, 1000, 60, 100), (500, 1000, 60, 80)])))
    assert overlap == "3c:d t62 3c:c t62 3c:0 t62 3c:0"


def test_volume_scales_the_bin_and_volume_zero_writes_a_note_off() -> None:
    text = names(TOK.encode(score_ms([(0, 100, 60, 100), (200, 100, 62, 100)], [(150, 7, 0)])))
    assert text == "3c:d t12 3c:0 t12 3e:0 t12 3e:0"  # the volume-0 note-on is "3e:0"


def test_only_piano_programs_count_and_all_notes_off_ends_every_note() -> None:
    assert TOK.encode(score_ms([(0, 100, 60, 100)], program=40)) == []  # a violin
    assert names(TOK.encode(score_ms([(0, 100, 60, 100)], program=6))) == "3c:d t12 3c:0"
    cut = score_ms([(0, 1010, 60, 100)], [(296, 123, 0)])
    assert names(TOK.encode(cut)) == "3c:d t37 3c:0 t89 3c:0"  # and its own note-off later


@pytest.mark.parametrize("gap_ms", [10_500, 30_000])
def test_segments_split_at_long_silences_and_short_ones_are_dropped(gap_ms: int) -> None:
    notes = [(0, 40_000, 60, 100), (40_000 + gap_ms, 35_000, 62, 100)]
    segments = REF.encode_segments(score_ms(notes))
    assert len(segments) == 2 and all(s[0] == 1 and s[-1] == 2 for s in segments)
    short = score_ms([(0, 20_000, 60, 100), (20_000 + gap_ms, 35_000, 62, 100)])
    assert [names(s[1:2]) for s in REF.encode_segments(short)] == ["3e:d"]
