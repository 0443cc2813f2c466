"""The tokenizer families by name: build one from a `tokenizers` entry, load a saved one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from midilm.tokenize.base import MIDITOK_CLASSES, MusicTokenizer

OUR_FAMILIES = ("midicompact", "simplified_midi", "simplified_midi_bend")


def build_tokenizer(cfg: Mapping[str, Any]) -> MusicTokenizer:
    """Build the tokenizer named by `cfg["name"]` (params.yaml's `tokenizer` group)."""
    name = str(cfg["name"]).lower()
    if name in MIDITOK_CLASSES:
        from midilm.tokenize.miditok_family import MidiTokTokenizer

        return MidiTokTokenizer.from_config(name, cfg.get("miditok", {}))
    if name == "midicompact":
        from midilm.tokenize.midicompact import MidiCompactTokenizer

        return MidiCompactTokenizer.from_config(cfg.get("midicompact") or {})
    if name in ("simplified_midi", "simplified_midi_bend"):
        from midilm.tokenize.simplified_midi import SimplifiedMidiTokenizer

        options = dict(cfg.get("simplified_midi") or {})
        options.setdefault("bend", name == "simplified_midi_bend")
        return SimplifiedMidiTokenizer.from_config(options)
    raise ValueError(
        f"unknown tokenizer {name!r}; choose one of {sorted(MIDITOK_CLASSES) + list(OUR_FAMILIES)} "
        "(conf/tokenizer/*.yaml)"
    )


def load_tokenizer(path: str | Path) -> MusicTokenizer:
    """Load a tokenizer saved by the tokenize stage (`data/tokens/<name>/tokenizer.json`).

    Our families write a `family` field; a file without one is a MidiTok tokenizer."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: tokenizer file missing; run `dvc repro tokenize`.")
    family = json.loads(path.read_text(encoding="utf-8")).get("family")
    if family == "midicompact":
        from midilm.tokenize.midicompact import MidiCompactTokenizer

        return MidiCompactTokenizer.load(path)
    if family == "simplified_midi":
        from midilm.tokenize.simplified_midi import SimplifiedMidiTokenizer

        return SimplifiedMidiTokenizer.load(path)
    if family is not None:
        raise ValueError(
            f"{path}: unknown tokenizer family {family!r}; expected one of "
            "midicompact, simplified_midi (or a MidiTok file without `family`)"
        )
    from midilm.tokenize.miditok_family import MidiTokTokenizer

    return MidiTokTokenizer.load(path)
