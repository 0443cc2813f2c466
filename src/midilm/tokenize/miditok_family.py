"""MidiTok tokenizers (REMI, TSD, MIDILike, Structured, CPWord, Octuple, MMM) as MusicTokenizers.

Compound tokenizers (CPWord, Octuple) emit K sub-tokens per compound token, one per
sub-vocabulary. They are flattened to one id stream: sub-token k of a compound becomes
``offset[k] + sub_id`` (``offset[k]`` = sizes of sub-vocabularies 0..k-1), in sub-vocabulary order,
so a compound token is K consecutive ids and the vocabulary is the disjoint union (size = sum).
Decoding regroups ids by the sub-vocabulary range they fall in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import miditok
import numpy as np
import symusic

from midilm.tokenize.base import MIDITOK_CLASSES, DecodeError, as_id

SPECIAL_TOKENS = ["PAD", "BOS", "EOS"]
TRAINING_MODELS = ("BPE", "Unigram")


class MidiTokTokenizer:
    """One token stream for all tracks (programs as tokens), specials PAD/BOS/EOS."""

    def __init__(self, name: str, tokenizer: miditok.MusicTokenizer) -> None:
        self.name = name
        self._tok = tokenizer
        sizes = [len(v) for v in tokenizer.vocab] if tokenizer.is_multi_voc else [len(tokenizer)]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

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

    @property
    def is_compound(self) -> bool:
        """True for CPWord/Octuple: K sub-tokens per compound token (see the module doc)."""
        return bool(self._tok.is_multi_voc)

    def train(self, vocab_size: int, model: str, files: Sequence[Path]) -> None:
        """Train BPE or Unigram on `files` (MidiTok streams them: one file in memory at a time)."""
        if model not in TRAINING_MODELS:
            raise ValueError(f"tokenizer training model {model!r}: use one of {TRAINING_MODELS}")
        if self.is_compound:
            raise ValueError(f"{self.name}: MidiTok cannot train BPE/Unigram on compound tokens")
        self._tok.train(vocab_size=int(vocab_size), model=model, files_paths=list(files))
        self._offsets = np.asarray([0, len(self._tok)], dtype=np.int64)

    def encode(self, score: symusic.Score) -> list[int]:
        seq = self._tok.encode(score)
        seqs = seq if isinstance(seq, list) else [seq]  # multi-stream: concatenate streams
        if not self.is_compound:
            return [int(i) for s in seqs for i in s.ids]
        offsets = self._offsets[:-1].tolist()
        return [
            o + int(i)
            for s in seqs
            for compound in s.ids
            for o, i in zip(offsets, compound, strict=True)
        ]

    def decode(self, ids: Sequence[int]) -> symusic.Score:
        """Decode; ids out of range and special tokens are dropped. A non-integer id, or ids
        MidiTok cannot turn into a score (times past the last tick a MIDI file holds, which
        symusic refuses), raise DecodeError."""
        specials = {self.pad_id, self.bos_id, self.eos_id}
        checked = (as_id(raw, k) for k, raw in enumerate(ids))
        kept = [i for i in checked if 0 <= i < self.vocab_size and i not in specials]
        tokens: list[Any] = list(self._compounds(kept)) if self.is_compound else kept
        if not tokens:
            return symusic.Score(self._tok.time_division)
        try:
            score = self._tok.decode(tokens)
        except MemoryError:
            raise
        except Exception as exc:  # MidiTok's own failure on a sequence it cannot read
            raise DecodeError(
                f"{self.name}: MidiTok could not decode {len(kept)} ids "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        for track in score.tracks:  # a time that wrapped past int32 would be negative
            notes = track.notes.numpy()
            if len(notes["time"]) and (notes["time"].min() < 0 or notes["duration"].min() < 0):
                raise DecodeError(f"{self.name}: the ids decode to negative times (past int32)")
        return score

    def _compounds(self, ids: Sequence[int]) -> Iterator[list[int]]:
        """Regroup flat ids into compound tokens; incomplete or out-of-order groups are dropped."""
        k_of = np.searchsorted(self._offsets, np.asarray(ids, dtype=np.int64), side="right")
        width = len(self._offsets) - 1
        current: list[int] = []
        for flat, k in zip(ids, (k_of - 1).tolist(), strict=True):
            if k != len(current):
                current = []
                if k != 0:
                    continue
            current.append(int(flat) - int(self._offsets[k]))
            if len(current) == width:
                yield current
                current = []

    @property
    def vocab(self) -> Mapping[str, int]:
        if not self.is_compound:
            return self._tok.vocab
        return {
            f"{k}:{token}": int(self._offsets[k]) + i
            for k, sub in enumerate(self._tok.vocab)
            for token, i in sub.items()
        }

    @property
    def vocab_size(self) -> int:
        return int(self._offsets[-1])

    @property
    def resolution(self) -> int:
        """Positions per quarter note: the onset grid (round-trip F1 works at this resolution)."""
        return int(self._tok.config.max_num_pos_per_beat)

    def _special(self, token: str) -> int:
        if self.is_compound:
            return int(self._tok.vocab[0][token])
        return int(self._tok[token])

    @property
    def pad_id(self) -> int:
        return self._special("PAD_None")

    @property
    def bos_id(self) -> int:
        return self._special("BOS_None")

    @property
    def eos_id(self) -> int:
        return self._special("EOS_None")

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
