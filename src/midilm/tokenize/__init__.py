"""Tokenizers behind one protocol (`encode`, `decode`, `vocab`) and the tokenize stage."""

from midilm.tokenize.base import MusicTokenizer
from midilm.tokenize.factory import build_tokenizer, load_tokenizer

__all__ = ["MusicTokenizer", "build_tokenizer", "load_tokenizer"]
