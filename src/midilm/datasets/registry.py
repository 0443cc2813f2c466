"""The dataset registry (`registry.yaml`, one entry per dataset) and `midilm datasets list`."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from midilm.datasets.download import RemoteFile, mirror_tree
from midilm.datasets.sources import MUSIC21_KINDS, music21_corpus_dir
from midilm.specs.dataset import DatasetSpec, SourceSpec

CHORALE_DIR = "bach"  # where music21 keeps the chorales in its corpus
REGISTRY_FILE = Path(__file__).with_name("registry.yaml")
KINDS = ("url_archive", "hf_hub", "music21_corpus", "manual", "folder")
ROLES = ("piano", "drums", "guitar", "multi")
AVAILABLE, NEEDS_DOWNLOAD, NEEDS_MANUAL = "available", "needs download", "needs manual file"


@dataclass(frozen=True)
class DatasetEntry:
    """One registry entry with its variant applied: where the data is and how to read it."""

    name: str
    variant: str | None
    title: str
    kind: str
    role: str
    license: str
    formats: tuple[str, ...]
    converter: str
    layout: str
    split: str  # "hash", or "official (...)" saying where the official split comes from
    layout_args: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    files: tuple[RemoteFile, ...] = ()
    archive_root: str = "."
    mirror: str | None = None
    repo_id: str | None = None
    manual: str = ""
    facts: str = ""

    @property
    def official_split(self) -> bool:
        return self.split.startswith("official")


@functools.cache
def _raw_registry() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(REGISTRY_FILE.read_text(encoding="utf-8"))


def registry_names() -> list[str]:
    return sorted(_raw_registry())


def variants_of(name: str) -> list[str]:
    return sorted(_raw_registry()[name].get("variants") or {})


def get_entry(name: str, variant: str | None = None) -> DatasetEntry:
    """The entry `name` with `variant` (or its default variant) merged over the base fields."""
    raw = _raw_registry()
    if name not in raw:
        raise KeyError(f"dataset registry: no entry {name!r}; known: {', '.join(sorted(raw))}")
    base = dict(raw[name])
    variants = base.pop("variants", None) or {}
    chosen = variant or base.pop("default_variant", None)
    base.pop("default_variant", None)
    if variants and chosen not in variants:
        raise KeyError(
            f"dataset registry: {name} has no variant {chosen!r}; pick one of {sorted(variants)}"
        )
    if not variants and variant:
        raise KeyError(f"dataset registry: {name} has no variants; remove `variant: {variant}`")
    merged = {**base, **(variants.get(chosen) or {})}
    files = tuple(RemoteFile(**f) for f in merged.pop("files", None) or ())
    entry = DatasetEntry(
        name=name,
        variant=chosen,
        files=files,
        formats=tuple(merged.pop("formats", ())),
        **merged,
    )
    if entry.kind not in KINDS or entry.role not in ROLES:
        raise ValueError(f"{REGISTRY_FILE}: {name}: kind {entry.kind!r} / role {entry.role!r}")
    return entry


def all_entries() -> list[DatasetEntry]:
    """Every entry and every variant, in name order."""
    out = []
    for name in registry_names():
        for variant in variants_of(name) or [None]:
            out.append(get_entry(name, variant))
    return out


def downloads_root() -> Path:
    """Where archives are downloaded and extracted (a cache, not a DVC output)."""
    return Path("data") / "downloads"


def extracted_dir(entry: DatasetEntry, root: Path | None = None) -> Path:
    return (root or downloads_root()) / "extracted" / (entry.mirror or entry.name)


def hub_cached(repo_id: str) -> bool:
    from midilm.datasets.hub import hub_cache_dir

    return (hub_cache_dir() / f"datasets--{repo_id.replace('/', '--')}").is_dir()


def entry_status(entry: DatasetEntry, cfg: SourceSpec | None = None) -> str:
    """available / needs download / needs manual file (what `midilm datasets list` prints)."""
    if cfg is not None and cfg.path:
        return AVAILABLE if Path(cfg.path).exists() else f"{NEEDS_MANUAL}: {cfg.path}"
    if entry.kind == "music21_corpus":
        return AVAILABLE if (music21_corpus_dir() / CHORALE_DIR).is_dir() else NEEDS_DOWNLOAD
    if entry.mirror and mirror_tree(None, entry.mirror, verify=False) is not None:
        return AVAILABLE
    if extracted_dir(entry).is_dir():
        return AVAILABLE
    if entry.kind == "hf_hub" and entry.repo_id and hub_cached(entry.repo_id):
        return AVAILABLE
    if entry.kind in ("url_archive", "hf_hub"):
        return NEEDS_DOWNLOAD
    return NEEDS_MANUAL


def source_status(name: str, cfg: SourceSpec, section: str) -> str:
    """ "available", or "missing: <what to do>"."""
    kind = cfg.kind
    if kind == "registry":
        entry = get_entry(cfg.name or name, cfg.variant)
        return entry_status(entry, cfg)
    if kind in MUSIC21_KINDS:
        sub = CHORALE_DIR if kind == "music21_chorales" else (cfg.corpus_dir or "")
        folder = music21_corpus_dir() / sub
        if sub and folder.is_dir():
            return "available"
        return f"missing: {folder} not found; reinstall music21 or fix dataset.{section}.{name}"
    if kind == "folder":
        path = Path(cfg.path or "")
        if cfg.path and path.is_dir():
            return "available"
        return f"missing: create {path} with .mid files or fix dataset.{section}.{name}.path"
    return f"missing: unknown kind {kind!r}; use registry, music21_chorales, music21_abc or folder"


def list_sources(spec: DatasetSpec) -> list[dict[str, Any]]:
    """One dict per configured source and folder, then one per registry entry and variant:
    name, kind, enabled, status, license (and role, formats, split for registry rows)."""
    entries = []
    for section, configured in (("sources", spec.sources), ("folders", spec.folders)):
        for name, cfg in sorted(configured.items()):
            entries.append(
                {
                    "name": name,
                    "kind": cfg.kind,
                    "enabled": cfg.enabled,
                    "status": source_status(name, cfg, section),
                    "license": cfg.license,
                }
            )
    for entry in all_entries():
        label = entry.name if entry.variant is None else f"{entry.name}:{entry.variant}"
        entries.append(
            {
                "name": f"registry/{label}",
                "kind": entry.kind,
                "enabled": False,
                "status": entry_status(entry),
                "license": entry.license,
                "role": entry.role,
                "formats": ",".join(entry.formats),
                "split": entry.split,
            }
        )
    return entries
