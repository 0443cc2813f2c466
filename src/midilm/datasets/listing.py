"""Registry sources: find the data on disk (user path, mirror, download, hub) and list its
pieces with their official split, one lister per `layout` of `registry.yaml`."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from midilm.common.logging import get_logger
from midilm.datasets.inputs import Found, InputError, decode_text, display_text, read_input, walk
from midilm.datasets.registry import DatasetEntry, downloads_root, extracted_dir, get_entry
from midilm.datasets.sources import (
    ABC_SUFFIXES,
    FOLDER_SUFFIXES,
    GUITARPRO_SUFFIXES,
    JAMS_SUFFIXES,
    MIDI_SUFFIXES,
    Listing,
    PieceTask,
    ReadRules,
    chorale_tasks,
    files_tasks,
    folder_tasks,
    issue,
)
from midilm.datasets.split import SPLITS
from midilm.specs.dataset import SourceSpec

log = get_logger(__name__)

# Official split names as datasets write them -> ours.
SPLIT_NAMES = {"train": "train", "validation": "valid", "valid": "valid", "test": "test"}


def locate(entry: DatasetEntry, cfg: SourceSpec, downloads: Path | None = None) -> Path:
    """The folder holding the entry's data: `path` from params (a folder, or an archive that is
    extracted), else the mirror's extracted folder, else the Hugging Face snapshot, else the
    downloaded and extracted archives. Raises FileNotFoundError saying what to do."""
    from midilm.datasets.download import download, mirror_tree
    from midilm.datasets.extract import safe_extract

    downloads = downloads or downloads_root()
    where = f"dataset.sources.<name> (registry entry {entry.name})"
    if cfg.path:
        path = Path(cfg.path)
        if path.is_dir():
            return path
        if path.is_file():
            return _single_child(safe_extract(path, extracted_dir(entry, downloads)))
        raise FileNotFoundError(f"{path}: not found; fix `path` of {where}")
    if entry.mirror and (tree := mirror_tree(None, entry.mirror)) is not None:
        return tree
    if entry.kind == "hf_hub" and entry.repo_id:
        from midilm.datasets.hub import hub_snapshot

        return hub_snapshot(entry.repo_id, repo_type="dataset", revision=cfg.revision)
    if entry.kind == "url_archive" and entry.files:
        if not cfg.download:
            raise FileNotFoundError(
                f"{entry.name}: not downloaded and `download: false`; set MIDILM_MIRROR, give a "
                f"`path`, or allow the download in {where}"
            )
        target = extracted_dir(entry, downloads)
        for remote in entry.files:
            archive = download(remote, downloads / "archives")
            safe_extract(archive, target)
        return target / entry.archive_root
    raise FileNotFoundError(
        f"{entry.name}: {entry.manual or 'no data'}; then set `path` in {where}"
    )


def _single_child(folder: Path) -> Path:
    """An archive holding one top folder: that folder; else the extraction folder itself."""
    children = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return children[0] if len(children) == 1 and children[0].is_dir() else folder


def csv_split(dataset: str, root: Path, entry: DatasetEntry, cfg: SourceSpec,
              options: Mapping[str, Any], rules: ReadRules) -> Listing:  # fmt: skip
    """One MIDI per CSV row (Groove info.csv, MAESTRO, E-GMD), its split from a column and its
    official duration from another (`duration_column`, where the table has one).
    `merge_train_test` (E-GMD as in the thesis): train and test train, validation tests."""
    args = entry.layout_args
    table = root / args["csv"]
    if not table.is_file():
        raise FileNotFoundError(f"{table}: the split table of {entry.name} is missing")
    with table.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    splits: dict[str, str | None] = {}
    durations: dict[str, float] = {}
    for row in rows:
        if args.get("duration_column") and row.get(args["duration_column"]):
            durations[row[args["path_column"]]] = float(row[args["duration_column"]])
        split = SPLIT_NAMES.get(row[args["split_column"]].strip().lower())
        if options.get("merge_train_test"):
            split = {"train": "train", "test": "train", "valid": "test"}.get(split or "")
        splits[row[args["path_column"]]] = split
    files = [Found(str(root / rel), rel) for rel in sorted(splits)]  # the worker reads them
    return files_tasks(dataset, root, files, cfg, rules, splits, durations=durations)


def pianoroll_json(dataset: str, root: Path, entry: DatasetEntry, cfg: SourceSpec,
                   options: Mapping[str, Any], rules: ReadRules) -> Listing:  # fmt: skip
    """JSB's JSON: {split: [piece = [step = [pitch, ...], ...], ...]}; pieces `<split>_<nnn>`."""
    args = entry.layout_args
    path = root / args["file"]
    source = f"{entry.name}:{args['file']}"
    data = _read_json(dataset, source, path, rules)
    if isinstance(data, Listing):
        return data
    opts = json.dumps({"steps_per_quarter": int(args["steps_per_quarter"])})
    listing = Listing()
    for key in sorted(data, key=lambda k: SPLITS.index(SPLIT_NAMES.get(k, "train"))):
        split = SPLIT_NAMES.get(key)
        if split is None or not isinstance(data[key], list):
            listing.issues.append(issue(dataset, f"{source}#{key}", str(path), "parse_error",
                                        f"unknown split {key!r} or not a list", True))  # fmt: skip
            continue
        for index, steps in enumerate(data[key]):
            listing.tasks.append(
                PieceTask(dataset=dataset, name=f"{split}_{index:03d}", kind="pianoroll",
                          source=f"{source}#{key}/{index}", license=cfg.license, ref=str(path),
                          text=json.dumps(steps), split=split, options=opts,
                          input=display_text(path))
            )  # fmt: skip
    return listing


def abc_json(dataset: str, root: Path, entry: DatasetEntry, cfg: SourceSpec,
             options: Mapping[str, Any], rules: ReadRules) -> Listing:  # fmt: skip
    """IrishMAN: one JSON list of tunes per split file; the ABC text sits in `field`."""
    args = entry.layout_args
    listing = Listing()
    for split, filename in args["files"].items():
        path = root / filename
        tunes = _read_json(dataset, f"{entry.name}:{filename}", path, rules)
        if isinstance(tunes, Listing):
            listing.extend(tunes)
            continue
        for index, tune in enumerate(tunes if isinstance(tunes, list) else []):
            source = f"{entry.name}:{filename}#{index}"
            text = tune.get(args["field"]) if isinstance(tune, dict) else None
            if not isinstance(text, str):
                listing.issues.append(issue(dataset, source, str(path), "parse_error",
                                            f"no text field {args['field']!r}", True))  # fmt: skip
                continue
            listing.tasks.append(
                PieceTask(dataset=dataset, name=f"{split}_{index:06d}", kind="abc",
                          source=source, license=cfg.license, ref=str(path), text=text,
                          split=split, input=display_text(path))
            )  # fmt: skip
    return listing


def _read_json(dataset: str, source: str, path: Path, rules: ReadRules) -> Any:
    """The JSON in `path`, or a Listing holding its quarantine line."""
    try:
        return json.loads(decode_text(read_input(path, rules.max_file_bytes)))
    except InputError as error:
        reason, detail = error.reason, str(error)
    except ValueError as error:
        reason, detail = "parse_error", f"{type(error).__name__}: {error}"
    return Listing(issues=[issue(dataset, source, str(path), reason, detail, True)])


def _glob_lister(suffixes: tuple[str, ...]) -> Callable[..., Listing]:
    def lister(dataset: str, root: Path, entry: DatasetEntry, cfg: SourceSpec,
               options: Mapping[str, Any], rules: ReadRules) -> Listing:  # fmt: skip
        args = entry.layout_args
        files = walk(root, suffixes, rules.links, str(args.get("pattern", "**/*")))
        splits = None
        if args.get("split_from_dir"):  # e.g. JSB Chorales.zip: train/, valid/, test/
            splits = {f.rel: SPLIT_NAMES.get(f.rel.split("/")[0]) for f in files}
        return files_tasks(dataset, root, files, cfg, rules, splits, json.dumps(dict(options)))

    return lister


LAYOUTS: dict[str, Callable[..., Listing]] = {
    "csv_split": csv_split,
    "pianoroll_json": pianoroll_json,
    "abc_json": abc_json,
    "abc_files": _glob_lister(ABC_SUFFIXES),
    "midi_glob": _glob_lister(MIDI_SUFFIXES),
    "guitarpro_glob": _glob_lister(GUITARPRO_SUFFIXES),
    "jams_glob": _glob_lister(JAMS_SUFFIXES),
    "folder": _glob_lister(FOLDER_SUFFIXES),
}


def registry_tasks(dataset: str, cfg: SourceSpec, rules: ReadRules) -> Listing:
    """The pieces of `dataset.sources.<dataset>` (kind: registry): `name` (default: the key),
    `variant`, `path`, `download`, `options`, `license` (default: the registry's)."""
    entry = get_entry(cfg.name or dataset, cfg.variant)
    cfg = dataclasses.replace(cfg, license=cfg.license or entry.license)
    options = {**entry.options, **cfg.options}
    if entry.layout == "music21_chorales":
        return chorale_tasks(dataset, cfg)
    if entry.layout == "folder":
        return folder_tasks(dataset, cfg, rules)
    root = locate(entry, cfg)
    log.info("%s: %s (%s) from %s", dataset, entry.name, entry.variant or "-", root)
    return LAYOUTS[entry.layout](dataset, root, entry, cfg, options, rules)
