"""The plumbing shared by MIDICompact and Simplified MIDI: one options parser for both configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import symusic

from midilm.tokenize import build_tokenizer
from midilm.tokenize.midicompact import MidiCompactConfig
from midilm.tokenize.named_vocab import config_from_mapping
from midilm.tokenize.simplified_midi import SimplifiedMidiConfig


def test_a_mapping_becomes_the_dataclass() -> None:
    assert config_from_mapping(MidiCompactConfig, {"velocity_bins": 8}).velocity_bins == 8
    assert config_from_mapping(SimplifiedMidiConfig, None) == SimplifiedMidiConfig()


def test_unknown_keys_are_named_with_the_known_ones_and_the_source() -> None:
    with pytest.raises(ValueError) as error:
        config_from_mapping(SimplifiedMidiConfig, {"bend": True, "max_dur": 9, "tpq": 4}, "x.yaml")
    message = str(error.value)
    assert message.startswith("x.yaml: unknown SimplifiedMidiConfig option(s) max_dur, tpq;")
    assert "known options: bend, max_duration, max_time, include_drums, program" in message


@pytest.mark.parametrize(
    ("name", "block", "source"),
    [
        ("midicompact", "midicompact", "conf/tokenizer/midicompact.yaml"),
        ("simplified_midi", "simplified_midi", "conf/tokenizer/simplified_midi"),
    ],
)
def test_both_families_parse_through_it(name: str, block: str, source: str) -> None:
    with pytest.raises(ValueError, match=f"^{source}.* option\\(s\\) nope;"):
        build_tokenizer({"name": name, block: {"nope": 1}})


def test_not_a_mapping_is_refused() -> None:
    with pytest.raises(ValueError, match="must be a mapping, got list"):
        config_from_mapping(MidiCompactConfig, [1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize("family", ["midicompact", "simplified_midi"])
def test_a_drum_only_piece_is_encoded_by_default_and_drums_beside_pitched_are_not(
    family: str, shared_datasets: Path
) -> None:
    """`include_drums: auto`: a Groove file (drums only) keeps its hits; a piano piece with a
    drum track keeps only the piano (the thesis piano form); `false` drops all drums."""
    drums = symusic.Score(str(next(iter(sorted((shared_datasets / "groove").rglob("*.mid"))))))
    assert all(t.is_drum for t in drums.tracks if len(t.notes))
    hits = sum(len(t.notes) for t in drums.tracks)
    auto = build_tokenizer({"name": family})
    decoded = auto.decode(auto.encode(drums))
    assert sum(len(t.notes) for t in decoded.tracks) == hits
    off = build_tokenizer({"name": family, family: {"include_drums": False}})
    assert len(off.encode(drums)) == 0

    mixed = symusic.Score(480)
    piano, kit = symusic.Track("piano", 0, False), symusic.Track("kit", 0, True)
    piano.notes.append(symusic.Note(0, 480, 60, 80))
    kit.notes.extend([symusic.Note(0, 120, 36, 100), symusic.Note(480, 120, 38, 100)])
    mixed.tracks.extend([piano, kit])
    assert [n.pitch for t in auto.decode(auto.encode(mixed)).tracks for n in t.notes] == [60]
    every = build_tokenizer({"name": family, family: {"include_drums": True}})
    assert len([n for t in every.decode(every.encode(mixed)).tracks for n in t.notes]) == 3
    with pytest.raises(ValueError, match=r"include_drums must be true, false or auto; got 'yes'"):
        build_tokenizer({"name": family, family: {"include_drums": "yes"}})
