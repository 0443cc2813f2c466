"""MidiTok tokenizers (REMI, TSD, MIDILike, Structured, CPWord, Octuple, MMM) as MusicTokenizers."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import miditok
import symusic

MIDITOK_CLASSES: dict[str, str] = {
    "remi": "REMI",
    "tsd": "TSD",
    "midilike": "MIDILike",
    "structured": "Structured",
    "cpword": "CPWord",
    "octuple": "Octuple",
    "mmm": "MMM",
}
SPECIAL_TOKENS = ["PAD", "BOS", "EOS"]


class MidiTokTokenizer:
    """One token stream for all tracks (programs as tokens), specials PAD/BOS/EOS."""

    def __init__(self, name: str, tokenizer: miditok.MusicTokenizer) -> None:
        self.name = name
        self._tok = tokenizer

    @classmethod
    def from_config(cls, name: str, options: Mapping[str, Any]) -> MidiTokTokenizer:
        options = dict(options)
        beat_res = options.pop("beat_res", None)
        if beat_res is not None:
            options["beat_res"] = {_range_key(k): int(v) for k, v in dict(beat_res).items()}
        if "pitch_range" in options:
            options["pitch_range"] = tuple(options["pitch_range"])
        config = miditok.TokenizerConfig(
            special_tokens=SPECIAL_TOKENS,
            use_programs=True,
            one_token_stream_for_programs=True,
            **options,
        )
        return cls(name, getattr(miditok, MIDITOK_CLASSES[name])(config))

    @classmethod
    def load(cls, path: Path) -> MidiTokTokenizer:
        data = json.loads(path.read_text(encoding="utf-8"))
        class_name = data.get("tokenization")
        names = {v: k for k, v in MIDITOK_CLASSES.items()}
        if class_name not in names:
            raise ValueError(f"{path}: not a MidiTok tokenizer file (tokenization={class_name!r})")
        return cls(names[class_name], getattr(miditok, class_name)(params=path))

    def encode(self, score: symusic.Score) -> list[int]:
        seq = self._tok.encode(score)
        if isinstance(seq, list):  # multi-stream tokenizers: concatenate streams
            return [i for s in seq for i in s.ids]
        return list(seq.ids)

    def decode(self, ids: Sequence[int]) -> symusic.Score:
        """Decode; ids out of range and special tokens are dropped, never a crash."""
        specials = {self.pad_id, self.bos_id, self.eos_id}
        kept = [int(i) for i in ids if 0 <= int(i) < self.vocab_size and int(i) not in specials]
        if not kept:
            return symusic.Score(self._tok.time_division)
        return self._tok.decode(kept)

    @property
    def vocab(self) -> Mapping[str, int]:
        return self._tok.vocab

    @property
    def vocab_size(self) -> int:
        return len(self._tok)

    @property
    def resolution(self) -> int:
        """Positions per quarter note: the onset grid (round-trip F1 works at this resolution)."""
        return int(self._tok.config.max_num_pos_per_beat)

    @property
    def pad_id(self) -> int:
        return int(self._tok.pad_token_id)

    @property
    def bos_id(self) -> int:
        return int(self._tok["BOS_None"])

    @property
    def eos_id(self) -> int:
        return int(self._tok["EOS_None"])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._tok.save(path)


def _range_key(key: Any) -> tuple[int, int]:
    """`"0_4"` or `[0, 4]` -> (0, 4): beat-resolution ranges as YAML can write them."""
    if isinstance(key, str):
        start, end = key.split("_")
        return int(start), int(end)
    start, end = key
    return int(start), int(end)
