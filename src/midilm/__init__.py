"""midilm: a reproducible DVC pipeline for symbolic-music language models."""

__version__ = "0.1.0"
