"""The tokenize stage on real chorales: exact sequences, byte-identical outputs (the timing lives
apart in outputs/speed), reported failures, round-trip F1 raw and on the tokenizer's grid,
MIDICompact's segments."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import symusic

from midilm.augment.stage import run_augment
from midilm.common.paths import Layout
from midilm.common.spec import ConfigError
from midilm.tokenize import load_tokenizer
from midilm.tokenize.encode import piece_sequences
from midilm.tokenize.factory import build_tokenizer
from midilm.tokenize.stage import run_tokenize

STATS_KEYS = {"tokenizer", "vocab_size", "pieces", "sequences", "tokens", "notes", "duration_s",
              "tokens_per_note", "tokens_per_second", "seq_len_p50", "seq_len_p95", "failed",
              "per_split", "roundtrip", "roundtrip_raw", "transform", "roundtrip_on_grid",
              "family", "max_pieces", "segments", "trained"}  # fmt: skip
SPEED_KEYS = {"tokenizer", "files", "workers", "start_method", "seconds", "encode_files_per_s"}


@pytest.fixture()
def augmented(params: dict[str, Any], split_layout: Layout) -> Layout:
    """Augmented chorales plus one truncated MIDI (a real file cut after 40 bytes) in test."""
    split = pd.read_parquet(split_layout.split_manifest)
    bad = split.iloc[0].copy()
    bad_path = split_layout.root / "data/raw/midi/bach/truncated.mid"
    bad_path.write_bytes((split_layout.root / bad["path"]).read_bytes()[:40])
    bad["id"], bad["path"], bad["split"] = (
        "bach/truncated",
        "data/raw/midi/bach/truncated.mid",
        "test",
    )
    split = pd.concat([split, bad.to_frame().T], ignore_index=True).astype(split.dtypes)
    split.sort_values("id").to_parquet(split_layout.split_manifest, index=False)
    run_augment(params, split_layout)
    return split_layout


def test_sequences_and_stats(params: dict[str, Any], augmented: Layout) -> None:
    stats = run_tokenize(params, augmented, "remi")
    out = augmented.tokens_dir("remi")
    tokenizer = load_tokenizer(out)
    table = pq.read_table(out / "sequences.parquet")
    assert table.schema.field("ids").type == pa.list_(pa.int32())
    assert table.column_names == ["id", "source_id", "dataset", "split", "augmented", "segment",
                                  "n_notes", "duration_s", "n_tokens", "ids"]  # fmt: skip
    frame = table.to_pandas()
    manifest = pd.read_parquet(augmented.augment_manifest)
    assert list(frame["id"]) == [i for i in manifest["id"] if i != "bach/truncated"]
    for ids, n in zip(frame["ids"], frame["n_tokens"], strict=True):
        assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id and len(ids) == n
        assert min(ids) >= 0 and max(ids) < tokenizer.vocab_size

    assert set(stats) == STATS_KEYS
    assert stats["failed"] == [
        {"id": "bach/truncated", "reason": stats["failed"][0]["reason"]}
    ] and stats["failed"][0]["reason"].startswith("load_error")
    assert stats["sequences"] == len(frame) == 28 and stats["tokens"] == frame["n_tokens"].sum()
    assert stats["per_split"]["train"]["sequences"] == 24
    assert sum(s["tokens"] for s in stats["per_split"].values()) == stats["tokens"]
    assert stats["roundtrip"]["pieces"] == 2 and stats["roundtrip"]["f1"] > 0.95
    assert stats["roundtrip_on_grid"]["pieces"] == 2
    assert stats["vocab_size"] == tokenizer.vocab_size
    assert json.loads((out / "stats.json").read_text()) == stats
    speed = json.loads(augmented.speed_file("tokenize", "remi").read_text())
    assert set(speed) == SPEED_KEYS and speed["files"] == 29 and speed["tokenizer"] == "remi"


@pytest.mark.parametrize("key", ["remi", "midicompact"])
def test_outputs_are_byte_identical_across_runs(
    key: str, params: dict[str, Any], augmented: Layout
) -> None:
    """The whole output folder (the timing lives apart): a re-run of tokenize must not re-run
    train (stats.json dep), and a clone reproduces dvc.lock's hash."""
    out = augmented.tokens_dir(key)
    run_tokenize(params, augmented, key=key)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(first) == {"tokenizer.json", "sequences.parquet", "stats.json"}
    run_tokenize(params, augmented, key=key)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first


@pytest.mark.parametrize("key", ["remi", "simplified_midi"])
def test_workers_do_not_change_the_output(
    key: str, params: dict[str, Any], augmented: Layout
) -> None:
    out = augmented.tokens_dir(key)
    run_tokenize(params, augmented, key=key, workers=1)
    first = {name: (out / name).read_bytes() for name in ("sequences.parquet", "stats.json")}
    run_tokenize(params, augmented, key=key, workers=2)
    assert {name: (out / name).read_bytes() for name in first} == first
    speed = json.loads(augmented.speed_file("tokenize", key).read_text())
    assert speed["workers"] == 2 and speed["start_method"] in ("fork", "spawn")


@pytest.mark.parametrize("key", ["midicompact", "simplified_midi", "simplified_midi_bend"])
def test_thesis_encodings_round_trip_exactly_on_their_grid(
    key: str, params: dict[str, Any], augmented: Layout
) -> None:
    stats = run_tokenize(params, augmented, key=key)
    on_grid = stats["roundtrip_on_grid"]
    assert on_grid == {"pieces": 2, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert 0.9 < stats["roundtrip"]["f1"] <= 1.0


def test_bpe_entry_trains_on_a_capped_sample(params: dict[str, Any], augmented: Layout) -> None:
    params["tokenizers"]["remi_bpe"]["train"] = {"model": "BPE", "vocab_size": 700, "max_files": 6}
    params["tokenizers"]["remi_bpe"]["max_pieces"] = 20
    stats = run_tokenize(params, augmented, key="remi_bpe")
    out = augmented.tokens_dir("remi_bpe")
    assert stats["tokenizer"] == "remi_bpe" and stats["family"] == "remi"
    assert stats["trained"] == {"model": "BPE", "vocab_size": 700, "files": 6}
    assert stats["vocab_size"] == 700 == load_tokenizer(out).vocab_size
    assert json.loads(augmented.speed_file("tokenize", "remi_bpe").read_text())["files"] == 20
    assert stats["roundtrip"]["f1"] > 0.95
    plain = run_tokenize(params, augmented, key="remi")
    assert stats["tokens_per_note"] < plain["tokens_per_note"]  # BPE merges tokens


def test_unknown_key_names_the_choices(params: dict[str, Any], augmented: Layout) -> None:
    with pytest.raises(ConfigError, match="not in `tokenizers`"):
        run_tokenize(params, augmented, key="nope")


def test_midicompact_trains_on_segments_framed_by_start_and_end(
    params: dict[str, Any], augmented: Layout
) -> None:
    """Seed 001: each sequence is <start> ... <end> (a piece cut at long silences)."""
    stats = run_tokenize(params, augmented, key="midicompact")
    out = augmented.tokens_dir("midicompact")
    tokenizer = load_tokenizer(out)
    frame = pq.read_table(out / "sequences.parquet").to_pandas()
    assert stats["segments"] and stats["pieces"] == frame["id"].nunique() == 28
    start, end = tokenizer.vocab["<start>"], tokenizer.vocab["<end>"]
    for ids in frame["ids"]:
        assert ids[0] == start and ids[-1] == end and end not in list(ids[1:-1])


def test_a_long_silence_cuts_a_piece_into_segments() -> None:
    """Two phrases 12 s apart (over max_silence_s = 10 s, nothing held): two sequences, each
    framed, the second starting at its first note (no 12 s of waits)."""
    tokenizer = build_tokenizer({"name": "midicompact"})
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, 120.0))  # 1 s = 960 ticks
    track = symusic.Track("piano", 0, False)
    for onset_s in (0.0, 0.5, 1.0, 13.5, 14.0):
        track.notes.append(symusic.Note(int(onset_s * 960), 480, 60, 80))
    score.tracks.append(track)
    whole = piece_sequences(tokenizer, score, segments=False)
    parts = piece_sequences(tokenizer, score, segments=True)
    assert len(whole) == 1 and len(parts) == 2
    for ids in parts:
        assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id
    waits = [tokenizer.to_text([int(i)]) for i in parts[1][1:-1]]
    assert not waits[0].startswith("t")  # the segment starts at its first note
    assert sum(len(p) for p in parts) < len(whole[0]) + 2  # no silence encoded
