"""Plumbing shared by our own tokenizers (MIDICompact, Simplified MIDI): a list of token names with
the specials `<pad>`, `<start>`, `<end>` first, decode/text wrappers and JSON save/load."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Self

import symusic


class NamedVocabTokenizer:
    """Subclasses set `FAMILY`, `name`, `config` (a dataclass) and `_names` (ids -> names), and
    implement `from_config`, `decode_with_report` and `from_text_with_report`."""

    FAMILY: ClassVar[str]
    name: str
    config: Any
    _names: list[str]
    _vocab: dict[str, int]

    def _set_names(self, names: list[str]) -> None:
        self._names = names
        self._vocab = {token: i for i, token in enumerate(names)}

    @classmethod
    def from_config(cls, options: Mapping[str, Any], name: str | None = None) -> Self:
        raise NotImplementedError

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
