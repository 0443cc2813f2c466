"""Export a MusicTokenizer as a Hugging Face tokenizer (`AutoTokenizer.from_pretrained(dir)`).

A WordLevel model over the tokenizer's vocabulary, split on whitespace (and on ``:`` for
Simplified MIDI, whose text words are ``p60:v80:d96:t0``). Encoding a family's text form
(`to_text`) through it gives our ids; families without a text form are read as space-separated
token names. `add_special_tokens=True` wraps a sequence in BOS ... EOS like the tokenize stage.
Words missing from the vocabulary (e.g. a Simplified MIDI duration above its cap, which our
`from_text` would split) map to the pad token, which decoding ignores.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from midilm.tokenize.base import MusicTokenizer


def hf_backend(tok: MusicTokenizer) -> Tokenizer:
    """The `tokenizers` object: WordLevel over `tok.vocab`, whitespace (and `:`) split."""
    vocab = {str(k): int(v) for k, v in tok.vocab.items()}
    if len(vocab) != tok.vocab_size or sorted(vocab.values()) != list(range(tok.vocab_size)):
        raise ValueError(
            f"tokenizer {tok.name!r}: its vocab does not cover ids 0..{tok.vocab_size - 1} once "
            "each (a trained BPE/Unigram or compound MidiTok tokenizer?); export its base form"
        )
    names = {i: t for t, i in vocab.items()}
    pad, bos, eos = names[tok.pad_id], names[tok.bos_id], names[tok.eos_id]
    backend = Tokenizer(models.WordLevel(vocab, unk_token=pad))
    splits: list[pre_tokenizers.PreTokenizer] = [pre_tokenizers.WhitespaceSplit()]
    if tok.name.startswith("simplified_midi"):
        splits.append(pre_tokenizers.Split(":", behavior="removed"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(splits)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} $B {eos}",
        special_tokens=[(bos, tok.bos_id), (eos, tok.eos_id)],
    )
    return backend


def export_hf_tokenizer(tok: MusicTokenizer, out_dir: str | Path) -> PreTrainedTokenizerFast:
    """Write `tok` to `out_dir` (tokenizer.json + tokenizer_config.json) and return it."""
    out_dir = Path(out_dir)
    backend = hf_backend(tok)
    names = {i: t for t, i in tok.vocab.items()}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=names[tok.pad_id],
        bos_token=names[tok.bos_id],
        eos_token=names[tok.eos_id],
        unk_token=names[tok.pad_id],
        model_max_length=1_000_000_000,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    return fast
