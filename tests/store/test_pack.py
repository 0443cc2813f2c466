"""The pack stage on real chorales: binidx and Arrow hold exactly the tokenized sequences, and an
independent reader of the published Megatron .idx layout agrees."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from midilm.augment.stage import run_augment
from midilm.common.io import write_json_atomic
from midilm.common.paths import Layout
from midilm.datasets.split import SPLITS
from midilm.store.arrow import read_sequences_arrow, write_sequences_arrow
from midilm.store.binidx import BinIdxDataset, BinIdxWriter
from midilm.store.packed import training_stats, write_jsonl
from midilm.store.stage import run_pack
from midilm.tokenize.stage import run_tokenize


@pytest.fixture()
def packed(params: dict[str, Any], split_layout: Layout) -> Layout:
    run_augment(params, split_layout)
    run_tokenize(params, split_layout, "remi")
    run_pack(params, split_layout, "remi")
    return split_layout


def read_megatron_idx(path: Path) -> dict[str, Any]:
    """Megatron MMapIndexedDataset v1 index, parsed from its published layout only."""
    raw = path.read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00"
    version, code, n_seq, n_doc = struct.unpack_from("<QBQQ", raw, 9)
    at = 9 + 8 + 1 + 8 + 8
    sizes = np.frombuffer(raw, "<i4", n_seq, at)
    pointers = np.frombuffer(raw, "<i8", n_seq, at + 4 * n_seq)
    doc_idx = np.frombuffer(raw, "<i8", n_doc, at + 12 * n_seq)
    assert at + 12 * n_seq + 8 * n_doc == len(raw)
    return {"version": version, "code": code, "sizes": sizes, "pointers": pointers,
            "doc_idx": doc_idx}  # fmt: skip


def test_pack_round_trips_every_sequence(packed: Layout) -> None:
    sequences = pq.read_table(packed.tokens_dir("remi") / "sequences.parquet").to_pylist()
    out = packed.packed_dir("remi")
    stats = json.loads((out / "stats.json").read_text())
    assert stats["dtype"] == "uint16" and stats["tokenizer"] == "remi"
    for split in ("train", "valid", "test"):
        rows = [r for r in sequences if r["split"] == split]
        data = BinIdxDataset(out / split)
        assert data.dtype == np.uint16 and len(data) == len(rows)
        for i, row in enumerate(rows):
            np.testing.assert_array_equal(data[i], np.asarray(row["ids"]))

        table = read_sequences_arrow(out / f"{split}.arrow")
        assert table.schema.field("ids").type == pa.list_(pa.uint16())
        assert table.column("id").to_pylist() == [r["id"] for r in rows]
        assert table.column("source_id").to_pylist() == [r["source_id"] for r in rows]
        assert table.column("ids").to_pylist() == [r["ids"] for r in rows]

        assert stats["splits"][split] == {
            "documents": len(rows),
            "tokens": sum(len(r["ids"]) for r in rows),
        }


def test_idx_matches_the_published_megatron_layout(packed: Layout) -> None:
    prefix = packed.packed_dir("remi") / "train"
    index = read_megatron_idx(prefix.with_suffix(".idx"))
    data = BinIdxDataset(prefix)
    assert index["version"] == 1 and index["code"] == 8  # 8 = uint16
    np.testing.assert_array_equal(index["sizes"], data.sizes)
    np.testing.assert_array_equal(index["doc_idx"], np.arange(len(data) + 1))
    tokens = np.fromfile(prefix.with_suffix(".bin"), dtype="<u2")
    assert tokens.size == index["sizes"].sum()
    for size, pointer, i in zip(index["sizes"], index["pointers"], range(len(data)), strict=True):
        np.testing.assert_array_equal(tokens[pointer // 2 : pointer // 2 + size], data[i])


def test_empty_split_packs_to_empty_files(tmp_path: Path) -> None:
    write_sequences_arrow(tmp_path / "valid.arrow", [], [], [], [], np.uint16)
    with BinIdxWriter(tmp_path / "valid", np.uint16):
        pass
    assert read_sequences_arrow(tmp_path / "valid.arrow").num_rows == 0
    assert len(BinIdxDataset(tmp_path / "valid")) == 0


def test_training_refuses_a_sampled_tokenizer(tmp_path: Path) -> None:
    splits = {s: {"documents": 3, "tokens": 9} for s in SPLITS}
    write_json_atomic(tmp_path / "stats.json", {"splits": splits, "max_pieces": 10})
    with pytest.raises(ValueError, match=r"tokenizers.tsd.max_pieces is set.*model 'gpt'"):
        training_stats(tmp_path, "tsd", "gpt")


class TextRemi:
    """REMI with a `to_text` (as MIDICompact and Simplified MIDI have): token names, spaced."""

    def __init__(self, layout: Layout) -> None:
        from midilm.tokenize import load_tokenizer

        self.inner = load_tokenizer(layout.tokens_dir("remi"))
        self.bos_id, self.eos_id, self.pad_id = (
            self.inner.bos_id,
            self.inner.eos_id,
            self.inner.pad_id,
        )
        self.names = {i: t for t, i in self.inner.vocab.items()}

    def to_text(self, ids: list[int]) -> str:
        return " ".join(self.names[i] for i in ids)


def test_jsonl_holds_one_text_per_sequence(packed: Layout, tmp_path: Path) -> None:
    tokenizer = TextRemi(packed)
    data = BinIdxDataset(packed.packed_dir("remi") / "valid")
    write_jsonl(tmp_path / "valid.jsonl", tokenizer, [data[i] for i in range(len(data))])
    lines = (tmp_path / "valid.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(data)
    first = json.loads(lines[0])["text"].split(" ")
    assert first[0] != "BOS_None" and len(first) == len(data[0]) - 2


def test_training_refuses_a_tokenizer_that_skipped_every_piece(tmp_path: Path) -> None:
    """Groove through a tokenizer that drops drums: pack writes empty splits; training says why."""
    splits = {s: {"documents": 0 if s == "train" else 3, "tokens": 0} for s in SPLITS}
    write_json_atomic(tmp_path / "stats.json", {"splits": splits, "max_pieces": None})
    with pytest.raises(ValueError, match=r"no train document for model 'gpt'.*include_drums"):
        training_stats(tmp_path, "midicompact", "gpt")
    splits["train"]["documents"] = 5
    write_json_atomic(tmp_path / "stats.json", {"splits": splits, "max_pieces": None})
    assert training_stats(tmp_path, "midicompact", "gpt")["splits"]["train"]["documents"] == 5
    with pytest.raises(FileNotFoundError, match=r"dvc repro pack@remi"):
        training_stats(tmp_path / "missing", "remi", "gpt")
