"""ABC tunes whose meter object music21 shares between two measures export after the repair."""

from __future__ import annotations

import pytest
from music21 import converter
from music21.exceptions21 import StreamException
from symusic import Score

from midilm.datasets.music21_export import (
    SourceError,
    close_open_repeats,
    export_abc,
    repair_shared_context,
    score_to_midi_bytes,
)
from midilm.datasets.sources import abc_tasks
from midilm.specs.dataset import SourceSpec
from tests.datasets.params import rules


@pytest.fixture(scope="module")
def oneill_tunes() -> dict[str, str]:
    spec = SourceSpec(kind="music21_abc", corpus_dir="oneills1850")
    tasks = abc_tasks("oneills1850", spec, rules()).tasks
    extra = {"0101-0200_x182", "0701-0720_x708", "1176-1275_x1189"}
    return {t.name: t.text for t in tasks[:10] + [t for t in tasks if t.name in extra]}


def test_unrepaired_tune_fails_the_midi_writer(oneill_tunes: dict[str, str]) -> None:
    score = converter.parse(oneill_tunes["0001-0050_x6"], format="abc")
    with pytest.raises(StreamException, match="already found in this Stream"):
        score_to_midi_bytes(score)


def test_repair_keeps_every_note_and_the_meter_changes(oneill_tunes: dict[str, str]) -> None:
    score = converter.parse(oneill_tunes["0001-0050_x6"], format="abc")
    sounding = [n for n in score.stripTies().flatten().notes if not n.duration.isGrace]
    assert repair_shared_context(score) == 2
    assert repair_shared_context(score) == 0  # idempotent
    midi = Score.from_midi(score_to_midi_bytes(score))
    assert midi.note_num() == len(sounding) == 176
    assert len(midi.time_signatures) > 1


def test_export_abc_repairs_or_reports(oneill_tunes: dict[str, str]) -> None:
    data, fixes = export_abc(oneill_tunes["0001-0050_x9"])
    assert fixes == {"shared_meter": 1, "open_repeats": 0} and data.startswith(b"MThd")
    assert export_abc(oneill_tunes["0001-0050_x2"])[1] == {"shared_meter": 0, "open_repeats": 0}
    with pytest.raises(SourceError, match="ExpanderException") as info:
        export_abc(oneill_tunes["0101-0200_x182"])  # malformed repeats: nothing to repair
    assert info.value.reason == "export_error"


def test_sections_without_start_repeat_repeat_from_their_double_bar(
    oneill_tunes: dict[str, str],
) -> None:
    # O'Neill 708: seven `|| ... :|` sections of 24 quarters; each should be played twice
    score = converter.parse(oneill_tunes["0701-0720_x708"], format="abc")
    written = score.parts[0].duration.quarterLength
    assert written == 168
    assert close_open_repeats(score) == 6  # the first section repeats from the tune's start
    midi = Score.from_midi(score_to_midi_bytes(score))
    assert midi.end() / midi.ticks_per_quarter == 2 * written  # not 50x, as before the repair


def test_tune_that_rejects_added_repeats_falls_back_to_music21s_reading(
    oneill_tunes: dict[str, str],
) -> None:
    data, fixes = export_abc(oneill_tunes["1176-1275_x1189"])
    assert fixes["open_repeats"] == 0 and Score.from_midi(data).note_num() > 0
