"""The tokenizer protocol every family implements, and the factory that builds one from params."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import symusic

# the last tick a MIDI file (and symusic's int32 times) can hold: no decoded time may pass it
MAX_TICK = 2**31 - 1


class DecodeError(ValueError):
    """The one error a decoder raises on bad input (ids or text); the message names the token.

    Raised for: an id that is not an integer, text that is not a str (`from_text(None)`), and a
    sequence whose times would pass `MAX_TICK` (two million waits, a huge value). Everything
    else decodes to a valid score: ids outside the vocabulary, words that do not parse or hold
    out-of-range values, and tokens out of order are dropped and counted (`*_with_report`);
    docs/decoding.md lists each family's rules."""


def as_id(raw: object, position: int) -> int:
    """`raw` as a Python int, or a DecodeError naming it and its position (floats, strings and
    None are not ids; numpy integers are)."""
    try:
        return operator.index(raw)  # type: ignore[arg-type]
    except TypeError:
        raise DecodeError(f"token {raw!r} at position {position} is not an integer id") from None


def check_text(text: object) -> str:
    """`text` itself when it is a str, else a DecodeError saying what it was."""
    if not isinstance(text, str):
        raise DecodeError(f"text to decode must be a str, got {type(text).__name__}")
    return text


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
