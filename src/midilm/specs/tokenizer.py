"""A `tokenizers.<key>` entry (conf/tokenizer/<name>.yaml): which family, its own options, how
many pieces to tokenize and, for BPE/Unigram, how to train it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from midilm.common.spec import ConfigError, from_mapping, section


@dataclass(frozen=True)
class TokenizerTrainSpec:
    model: str  # BPE | Unigram
    vocab_size: int
    max_files: int | None


@dataclass(frozen=True)
class TokenizerSpec:
    key: str  # output name: data/tokens/<key>
    family: str  # the class: remi, tsd, ..., midicompact, simplified_midi
    max_pieces: int | None  # tokenize a seeded sample of at most this many pieces (T2 only)
    segments: bool  # one sequence per segment (cut at long silences) instead of per piece
    options: dict[str, Any]  # the family's own options (its `miditok`, `midicompact`, ... block)
    train: TokenizerTrainSpec | None  # BPE/Unigram training

    @property
    def build_cfg(self) -> dict[str, Any]:
        """What `midilm.tokenize.base.build_tokenizer` reads."""
        return {"name": self.family, **self.options}


def tokenizer_keys(params: Mapping[str, Any]) -> list[str]:
    """Keys of params `tokenizers` (the DAG's tokenize@<key> stages), in params order."""
    return list(section(params, "tokenizers", where="conf/tokenizers/*.yaml"))


def tokenizer_spec(params: Mapping[str, Any], key: str) -> TokenizerSpec:
    entries = section(params, "tokenizers", where="conf/tokenizers/*.yaml")
    if key not in entries:
        raise ConfigError(
            f"params.yaml: tokenizer {key!r} is not in `tokenizers` ({', '.join(entries)}); "
            "add it to conf/tokenizers/*.yaml or pick one of those."
        )
    entry = dict(entries[key])
    where = f"conf/tokenizer/{entry.get('name', key)}.yaml"
    missing = [k for k in ("name", "max_pieces", "segments") if k not in entry]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing} (tokenizer {key!r})")
    family = str(entry.pop("family", None) or entry["name"]).lower()
    entry.pop("name")
    max_pieces = entry.pop("max_pieces")
    segments = entry.pop("segments")
    if not isinstance(segments, bool):
        raise ConfigError(f"{where}: `segments` must be true or false, not {segments!r}")
    train = entry.pop("train", None)
    return TokenizerSpec(
        key=str(key),
        family=family,
        max_pieces=None if max_pieces is None else int(max_pieces),
        segments=segments,
        options=entry,
        train=None if not train else from_mapping(TokenizerTrainSpec, train, f"{where}: train"),
    )
