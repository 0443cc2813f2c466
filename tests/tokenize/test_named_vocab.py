"""The plumbing shared by MIDICompact and Simplified MIDI: one options parser for both configs."""

from __future__ import annotations

import pytest

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
