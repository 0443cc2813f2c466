"""The `dataset` parameter group as typed, frozen specs, read once from params.yaml.

Every key of `conf/dataset/base.yaml` is required here (a dataset file inherits them; Hydra
composes base first, see conf/config.yaml). Source and folder entries are written by users, so
their optional keys have the defaults documented in docs/datasets.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf

from midilm.common.spec import ConfigError, from_mapping, section

BASE_CONF = "conf/dataset/base.yaml"
SOURCE_KINDS = ("music21_chorales", "music21_abc", "registry")  # under `dataset.sources`
LinkPolicy = Literal["none", "inside_root", "all"]
_DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class FilterSpec:
    """`dataset.filters`: the bounds a kept piece satisfies; a piece outside one is quarantined
    with the reason named in docs/datasets.md."""

    min_notes: int
    max_notes: int
    min_duration_s: float
    max_duration_s: float
    max_tracks: int
    max_file_bytes: int  # checked before a file is read
    min_qpm: float  # every tempo event of a kept piece lies in [min_qpm, max_qpm]
    max_qpm: float

    def __post_init__(self) -> None:
        if not 0 <= self.min_notes <= self.max_notes:
            raise ConfigError(f"dataset.filters: need 0 <= min_notes <= max_notes ({self})")
        if not 0 <= self.min_duration_s < self.max_duration_s:
            raise ConfigError(
                f"dataset.filters: need 0 <= min_duration_s < max_duration_s ({self})"
            )
        if not 0 < self.min_qpm < self.max_qpm:
            raise ConfigError(f"dataset.filters: need 0 < min_qpm < max_qpm ({self})")
        if self.max_tracks < 1 or self.max_file_bytes < 1:
            raise ConfigError("dataset.filters: max_tracks and max_file_bytes must be >= 1")


@dataclass(frozen=True)
class DedupSpec:
    mode: Literal["none", "exact", "transposition"]


@dataclass(frozen=True)
class SplitSpec:
    ratios: dict[str, float]


@dataclass(frozen=True)
class SourceSpec:
    """One `dataset.sources.<name>` or `dataset.folders.<name>` entry. `kind` picks the lister;
    the other keys apply to the kinds named beside them."""

    kind: str = "folder"
    license: str = ""
    enabled: bool = True
    max_pieces: int | None = None
    names: tuple[str, ...] | None = None  # keep only these piece names
    path: str | None = None  # folder; registry: a local copy (folder or archive)
    corpus_dir: str | None = None  # music21_abc: a folder of music21's corpus
    name: str | None = None  # registry: the entry (default: the key)
    variant: str | None = None  # registry
    download: bool = True  # registry: allow downloading
    revision: str | None = None  # registry, hf_hub: the snapshot revision
    options: dict[str, Any] = field(default_factory=dict)  # registry: converter options


@dataclass(frozen=True)
class DatasetSpec:
    """`params.dataset`."""

    name: str
    sources: dict[str, SourceSpec]
    folders: dict[str, SourceSpec]
    max_pieces_per_source: int | None
    filters: FilterSpec
    links: LinkPolicy  # which symbolic links under a folder are followed
    dedup: DedupSpec
    workers: int
    timeout_s: float
    worker_memory_mb: int | None  # heap a worker may add for one piece; null: no limit
    split: SplitSpec


def dataset_spec(params: Mapping[str, Any], where: str | None = None) -> DatasetSpec:
    """`params["dataset"]` as a DatasetSpec; a missing or unknown key raises ConfigError that
    names `where` (default: the chosen dataset file over conf/dataset/base.yaml) and the fix."""
    where = where or _where(params)
    if isinstance(params, DictConfig):
        params = OmegaConf.to_container(params, resolve=True)  # type: ignore[assignment]
    cfg = dict(section(params, "dataset", where=where))
    entries = {}
    for group in ("sources", "folders"):
        raw = cfg.get(group)
        if raw is None:
            raise ConfigError(
                f"{where}: missing key `{group}` (DatasetSpec); every dataset file inherits it "
                "from conf/dataset/base.yaml: recompose with `midilm params compose`"
            )
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: dataset.{group} must be a mapping of name: entry")
        entries[group] = {
            str(key): source_spec(key, value, f"{where}: dataset.{group}.{key}", group)
            for key, value in raw.items()
        }
    clash = sorted(set(entries["sources"]) & set(entries["folders"]))
    if clash:
        raise ConfigError(f"{where}: {clash} are both sources and folders; rename one")
    return from_mapping(DatasetSpec, {**cfg, **entries}, where)


def _where(params: Mapping[str, Any]) -> str:
    dataset = params.get("dataset") if isinstance(params, Mapping) else None
    name = dataset.get("name") if isinstance(dataset, Mapping) else None
    return f"conf/dataset/{name}.yaml (over {BASE_CONF})" if name else "conf/dataset"


def source_spec(key: Any, value: Any, where: str, group: str = "sources") -> SourceSpec:
    """One source or folder entry (a mapping), its dataset name checked (ids and folders)."""
    if not isinstance(key, str) or not _DATASET_NAME.fullmatch(key):
        raise ConfigError(
            f"{where}: the name {key!r} must be 1-64 letters, digits, '.', '_' or '-' (it names "
            "the dataset in piece ids and output folders)"
        )
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping (kind, path, license, ...), got {value!r}")
    spec = from_mapping(SourceSpec, value, where)
    if group == "folders" and spec.kind != "folder":
        raise ConfigError(f"{where}: a folder entry has kind `folder`; sources go in `sources`")
    if group == "sources" and spec.kind not in SOURCE_KINDS:
        raise ConfigError(
            f"{where}: kind {spec.kind!r} is not one of {list(SOURCE_KINDS)}; user folders go "
            "under dataset.folders"
        )
    return spec
