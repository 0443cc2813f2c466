"""What `midilm datasets list` shows: every configured source, its kind, status and license."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from midilm.datasets.sources import MUSIC21_KINDS, music21_corpus_dir, plain_dict

CHORALE_DIR = "bach"  # where music21 keeps the chorales in its corpus


def source_status(name: str, cfg: dict[str, Any], section: str) -> str:
    """ "available", or "missing: <what to do>"."""
    kind = cfg.get("kind", "folder")
    if kind in MUSIC21_KINDS:
        sub = CHORALE_DIR if kind == "music21_chorales" else str(cfg.get("corpus_dir", ""))
        folder = music21_corpus_dir() / sub
        if sub and folder.is_dir():
            return "available"
        return f"missing: {folder} not found; reinstall music21 or fix dataset.{section}.{name}"
    if kind == "folder":
        path = Path(str(cfg.get("path", "")))
        if cfg.get("path") and path.is_dir():
            return "available"
        return f"missing: create {path} with .mid files or fix dataset.{section}.{name}.path"
    return f"missing: unknown kind {kind!r}; use music21_chorales, music21_abc or a folder"


def list_sources(params: DictConfig) -> list[dict[str, Any]]:
    """One dict per source and folder: name, kind, enabled, status, license."""
    entries = []
    for section in ("sources", "folders"):
        for name, cfg in sorted(plain_dict(params.dataset.get(section)).items()):
            kind = cfg.get("kind", "folder")
            entries.append(
                {
                    "name": name,
                    "kind": kind,
                    "enabled": bool(cfg.get("enabled", True)),
                    "status": source_status(name, cfg, section),
                    "license": str(cfg.get("license", "")),
                }
            )
    return entries
