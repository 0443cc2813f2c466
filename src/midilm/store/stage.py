"""Stage `pack@KEY`: tokenizer KEY's sequences.parquet -> data/packed/KEY/ as Arrow IPC, Megatron
binidx and (for text encodings) JSONL, with stats.json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from midilm.common.logging import get_logger
from midilm.common.paths import Layout
from midilm.specs.tokenizer import tokenizer_spec
from midilm.store.packed import pack
from midilm.store.sequences import SEQUENCES_FILE, vocab_size_of
from midilm.tokenize.factory import load_tokenizer

log = get_logger(__name__)


def run_pack(params: Mapping[str, Any], layout: Layout, key: str) -> dict:
    """Pack tokenizer `key`; returns the stats written to data/packed/<key>/stats.json."""
    spec = tokenizer_spec(params, key)
    tokens_dir = layout.tokens_dir(spec.key)
    src = tokens_dir / SEQUENCES_FILE
    if not src.exists():
        raise FileNotFoundError(f"{src}: sequences missing; run `dvc repro tokenize@{key}` first.")
    tokenizer = load_tokenizer(tokens_dir)
    vocab_size = vocab_size_of(src) or tokenizer.vocab_size
    text = tokenizer if callable(getattr(tokenizer, "to_text", None)) else None
    stats = pack(src, layout.packed_dir(spec.key), spec.key, vocab_size, text, spec.max_pieces)
    log.info("pack %s: %s (%s)", spec.key, stats["splits"], stats["dtype"])
    return stats
