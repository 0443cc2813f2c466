"""Plumbing shared by our own tokenizers (MIDICompact, Simplified MIDI): a list of token names with
the specials `<pad>`, `<start>`, `<end>` first, decode/text wrappers and JSON save/load."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
import symusic

ConfigT = TypeVar("ConfigT")


def check_include_drums(value: object, source: str) -> None:
    if not (value is True or value is False or value == "auto"):
        raise ValueError(f"{source}: include_drums must be true, false or auto; got {value!r}")


def encoded_tracks(score: symusic.Score, include_drums: bool | str) -> list[Any]:
    """The tracks a thesis encoding reads (all merge into one): the pitched tracks with notes, and
    the drum tracks where `include_drums` is true, or `auto` and the piece has no pitched note
    (a drum dataset such as Groove or E-GMD: seed 001's drum model; notes keep their pitch, the GM
    drum key, and decode to an ordinary track, as in the thesis, which placed the drum model's
    output on the percussion channel when mixing)."""
    with_notes = [t for t in score.tracks if len(t.notes)]
    pitched = [t for t in with_notes if not t.is_drum]
    if include_drums is True or (include_drums == "auto" and not pitched):
        return with_notes
    return pitched


def config_from_mapping(
    cls: type[ConfigT], mapping: Mapping[str, Any] | None, source: str = "params.yaml"
) -> ConfigT:
    """`cls(**mapping)` for a dataclass `cls`; keys `cls` lacks raise a ValueError that names
    them, the known ones and `source` (where the mapping came from, e.g. a conf file)."""
    if not is_dataclass(cls):
        raise TypeError(f"config_from_mapping: {cls!r} is not a dataclass")
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise ValueError(
            f"{source}: {cls.__name__} options must be a mapping, got {type(mapping).__name__}"
        )
    known = [f.name for f in fields(cls)]
    unknown = sorted(str(k) for k in mapping if k not in known)
    if unknown:
        raise ValueError(
            f"{source}: unknown {cls.__name__} option(s) {', '.join(unknown)}; "
            f"known options: {', '.join(known)}"
        )
    return cls(**{str(k): v for k, v in mapping.items()})


class NamedVocabTokenizer:
    """Subclasses set `FAMILY`, `CONFIG` (a dataclass), `CONFIG_SOURCE` (the conf file its options
    come from), and in `__init__` `name`, `config` and `_names` (ids -> names); they implement
    `encode_array`, `decode_with_report` and `from_text_with_report`."""

    FAMILY: ClassVar[str]
    CONFIG: ClassVar[type]
    CONFIG_SOURCE: ClassVar[str]
    name: str
    config: Any
    _names: list[str]
    _vocab: dict[str, int]

    def __init__(self, config: Any = None, name: str | None = None) -> None:
        raise NotImplementedError

    def _set_names(self, names: list[str]) -> None:
        self._names = names
        self._vocab = {token: i for i, token in enumerate(names)}

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None, name: str | None = None) -> Self:
        """Build from a params/`tokenizer.json` options mapping (unknown keys are an error)."""
        return cls(config_from_mapping(cls.CONFIG, options, cls.CONFIG_SOURCE), name)

    def encode_array(self, score: symusic.Score) -> np.ndarray:
        """Token ids (no `<start>`/`<end>`) as an int64 array: the stage's fast path."""
        raise NotImplementedError

    def encode(self, score: symusic.Score) -> list[int]:
        return self.encode_array(score).tolist()

    def decode_with_report(self, ids: Sequence[int]) -> tuple[symusic.Score, int]:
        raise NotImplementedError

    def from_text_with_report(self, text: str) -> tuple[list[int], int]:
        raise NotImplementedError

    @property
    def vocab(self) -> Mapping[str, int]:
        return self._vocab

    @property
    def vocab_size(self) -> int:
        return len(self._names)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def bos_id(self) -> int:
        return 1

    @property
    def eos_id(self) -> int:
        return 2

    def decode(self, ids: Sequence[int]) -> symusic.Score:
        return self.decode_with_report(ids)[0]

    def from_text(self, text: str) -> list[int]:
        return self.from_text_with_report(text)[0]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"family": self.FAMILY, "name": self.name, "config": asdict(self.config)}
        data["vocab_size"] = self.vocab_size
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Self:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls.from_config(data.get("config", {}), data.get("name"))
