"""The tokenizer protocol every family implements, and the factory that builds one from params."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import symusic


@runtime_checkable
class MusicTokenizer(Protocol):
    """Score <-> token ids. `encode` returns ids without BOS/EOS; `decode` ignores specials."""

    name: str

    def encode(self, score: symusic.Score) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> symusic.Score: ...

    @property
    def vocab(self) -> Mapping[str, int]: ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def pad_id(self) -> int: ...

    @property
    def bos_id(self) -> int: ...

    @property
    def eos_id(self) -> int: ...

    def save(self, path: Path) -> None: ...


OUR_FAMILIES = ("midicompact", "simplified_midi", "simplified_midi_bend")
# our name -> MidiTok class name; MidiTok (and the torch it imports) loads only when one is used,
# so a stage or worker running our own families stays small (fast to fork)
MIDITOK_CLASSES: dict[str, str] = {
    "remi": "REMI",
    "tsd": "TSD",
    "midilike": "MIDILike",
    "structured": "Structured",
    "cpword": "CPWord",
    "octuple": "Octuple",
    "mmm": "MMM",
}


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
