"""The MIDI checks before and after symusic's parse, against mido (the closest maintained
reader): a file the structure check passes is read by symusic with the tempos, meters and keys
mido reads; the files it stops are those mido cannot read either (short meta events)."""

from __future__ import annotations

import io
from pathlib import Path

import mido
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from symusic import Score

from midilm.datasets.validate import Rejected, check_values, load_midi, midi_structure_problem
from tests.datasets.params import make_spec
from tests.hostile import midi_bytes as mb
from tests.hostile.strategies import generated_midi, mutated_midi


def mido_meta(data: bytes) -> tuple[list[int], list[tuple[int, int]], int] | None:
    """mido's tempos (microseconds per quarter), meters and key count; None if it fails."""
    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
    except Exception:
        return None
    events = [m for t in midi.tracks for m in t if m.is_meta]
    return ([m.tempo for m in events if m.type == "set_tempo"],
            [(m.numerator, m.denominator) for m in events if m.type == "time_signature"],
            sum(m.type == "key_signature" for m in events))  # fmt: skip


def symusic_meta(score: object) -> tuple[list[int], list[tuple[int, int]], int]:
    return ([t.mspq for t in score.tempos],  # type: ignore[attr-defined]
            [(t.numerator, t.denominator) for t in score.time_signatures],  # type: ignore[attr-defined]
            len(score.key_signatures))  # type: ignore[attr-defined]  # fmt: skip


SHORT = {
    "tempo_len0": mb.song(mb.meta(0x51, b"")),
    "tempo_len2": mb.song(mb.meta(0x51, b"\x07\xa1")),
    "timesig_len0": mb.song(mb.meta(0x58, b"")),
    "keysig_len1": mb.song(mb.meta(0x59, b"\x02")),
    "tempo_len0_last": mb.header(0, 1) + mb.track(mb.notes(), mb.meta(0x51, b""), end=False),
}


@pytest.mark.parametrize("name", sorted(SHORT))
def test_short_meta_events_are_malformed_as_mido_says(name: str) -> None:
    data = SHORT[name]
    assert mido_meta(data) is None  # mido: IndexError reading the event
    with pytest.raises(Rejected, match="needs") as info:
        load_midi(data)
    assert info.value.reason == "malformed"


def test_symusic_misreads_a_zero_length_tempo() -> None:
    """The upstream bug the check exists for (docs/datasets.md): the tempo comes from the bytes
    after the event."""
    score = Score.from_midi(SHORT["tempo_len0"])
    assert score.tempos[0].mspq != 500_000 and len(score.tempos) == 1


def test_division_zero_is_malformed_and_valid_files_pass(shared_datasets: Path) -> None:
    with pytest.raises(Rejected, match="division"):
        load_midi(mb.song(division=0))
    files = sorted((shared_datasets / "groove").rglob("*.mid"))[::20]
    files += sorted((shared_datasets / "giantmidi_piano_eval").rglob("*.mid"))[:10]
    for path in files:
        data = path.read_bytes()
        assert midi_structure_problem(data) is None, path
        assert symusic_meta(load_midi(data)) == mido_meta(data), path


def test_values_no_piece_has_are_rejected() -> None:
    filters = make_spec().filters
    for event, reason in [(mb.tempo(0), "bad_tempo"), (mb.tempo(1), "bad_tempo"),
                          (mb.meta(0x58, b"\x00\x02\x18\x08"), "bad_time_signature"),
                          (mb.meta(0x59, b"\x14\x00"), "bad_key_signature")]:  # fmt: skip
        with pytest.raises(Rejected) as info:
            check_values(load_midi(mb.song(event)), filters)
        assert info.value.reason == reason
    check_values(load_midi(mb.song(mb.tempo(500_000))), filters)


def test_a_time_signature_denominator_past_128_is_rejected() -> None:
    """symusic stores 2**dd in 8 bits: dd = 8 reads as 0 (mido: 256), caught as a zero term."""
    data = mb.song(mb.meta(0x58, b"\x03\x08\x18\x08"))
    assert symusic_meta(Score.from_midi(data))[1] == [(3, 0)]
    assert mido_meta(data)[1] == [(3, 256)]  # type: ignore[index]
    with pytest.raises(Rejected, match="3/0"):
        check_values(load_midi(data), make_spec().filters)


FILTERS = make_spec().filters


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(st.one_of(mutated_midi(), generated_midi()))
def test_what_passes_the_checks_symusic_reads_as_mido_does(data: bytes) -> None:
    """Whatever load_midi and check_values let through has the tempos, meters and keys mido
    reads from the same bytes."""
    try:
        score = load_midi(data)
        check_values(score, FILTERS)
    except Rejected:
        return  # quarantined: nothing misread gets in
    expected = mido_meta(data)
    if expected is not None:
        assert symusic_meta(score) == expected
