"""Dataset sources: turn `params.dataset` into a deterministic list of pieces to materialize.

Four kinds: `music21_chorales` (music21's chorale iterator), `music21_abc` (every tune of the
ABC files in a music21 corpus folder), `registry` (an entry of `registry.yaml`, listed by
`midilm.datasets.listing`) and `folder` (every MIDI, ABC, GuitarPro and JAMS file under a user
folder).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

MUSIC21_KINDS = ("music21_chorales", "music21_abc")
MIDI_SUFFIXES = (".mid", ".midi")
ABC_SUFFIXES = (".abc",)
GUITARPRO_SUFFIXES = (".gp3", ".gp4", ".gp5", ".gtp")
JAMS_SUFFIXES = (".jams",)
FOLDER_SUFFIXES = MIDI_SUFFIXES + ABC_SUFFIXES + GUITARPRO_SUFFIXES + JAMS_SUFFIXES
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TUNE_START = re.compile(r"(?m)^(?=X:)")
_TUNE_NUMBER = re.compile(r"X:\s*(\S*)")


@dataclass(frozen=True)
class PieceTask:
    """One piece to materialize: where it comes from and what the worker needs to read it."""

    dataset: str
    name: str  # piece name inside the dataset; the id is f"{dataset}/{name}"
    kind: str  # the converter: folder/midi | music21_chorales | music21_abc/abc | pianoroll |
    #            guitarpro | jams (midilm.datasets.converters.CONVERTERS)
    source: str  # provenance, e.g. "music21:bach/bwv269"
    license: str
    ref: str  # corpus name (chorales) or file path (folder, midi, guitarpro, jams)
    text: str = ""  # the tune's ABC text (abc) or the piano-roll steps as JSON (pianoroll)
    split: str | None = None  # the dataset's official split, None where it defines none
    options: str = ""  # converter options as JSON text (e.g. DadaGP's artist filter)
    official_duration_s: float | None = None  # the dataset's own duration (Groove info.csv)

    @property
    def id(self) -> str:
        return f"{self.dataset}/{self.name}"


def music21_corpus_dir() -> Path:
    from music21 import common

    return Path(common.getCorpusFilePath())


def safe_name(text: str) -> str:
    """A piece name usable in ids and file names: runs of other characters become `_`."""
    return _UNSAFE.sub("_", text).strip("_") or "piece"


def chorale_tasks(dataset: str, cfg: Mapping[str, Any]) -> list[PieceTask]:
    """music21's 371 chorales, in the iterator's order.

    The 371 (Riemenschneider's numbering) hold 21 chorales twice, e.g. bach/bwv267: the second
    one is named `bwv267_2`; equal content gives it the same split as the first.
    """
    from music21 import corpus

    names = list(corpus.chorales.Iterator(returnType="filename"))
    piece_names = unique_names([safe_name(name.split("/")[-1]) for name in names])
    return [
        PieceTask(
            dataset=dataset,
            name=piece_name,
            kind="music21_chorales",
            source=f"music21:{name}",
            license=str(cfg.get("license", "")),
            ref=name,
        )
        for name, piece_name in zip(names, piece_names, strict=True)
    ]


def unique_names(names: list[str]) -> list[str]:
    """Names made unique in order: the k-th repeat of `a` becomes `a_k` (k >= 2)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


def split_abc_tunes(text: str) -> list[tuple[str, str]]:
    """Split an ABC file's text at lines starting `X:`; return (tune number, tune text) pairs."""
    tunes = []
    for chunk in _TUNE_START.split(text):
        if chunk.startswith("X:"):
            match = _TUNE_NUMBER.match(chunk)
            tunes.append((match.group(1) if match else "", chunk))
    return tunes


def abc_tasks(dataset: str, cfg: Mapping[str, Any]) -> list[PieceTask]:
    """Every tune of the .abc files of a music21 corpus folder: files sorted, tunes in order."""
    corpus_dir = cfg.get("corpus_dir")
    if not corpus_dir:
        raise ValueError(
            f"dataset.sources.{dataset}: kind music21_abc needs `corpus_dir` (a folder of "
            f"{music21_corpus_dir()}, e.g. oneills1850)"
        )
    folder = music21_corpus_dir() / str(corpus_dir)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"dataset.sources.{dataset}.corpus_dir: {folder} not found; pick a folder of "
            f"{music21_corpus_dir()} or disable the source"
        )
    tasks: list[PieceTask] = []
    for path in sorted(folder.glob("*.abc")):
        tunes = split_abc_tunes(path.read_text(encoding="utf-8"))
        names = unique_names(  # a repeated X: number inside one file gets a suffix
            [safe_name(f"{path.stem}_x{number or i + 1}") for i, (number, _) in enumerate(tunes)]
        )
        for index, ((number, tune), name) in enumerate(zip(tunes, names, strict=True)):
            tasks.append(
                PieceTask(
                    dataset=dataset,
                    name=name,
                    kind="music21_abc",
                    source=f"music21:{corpus_dir}/{path.name}#X:{number or index + 1}",
                    license=str(cfg.get("license", "")),
                    ref=f"{corpus_dir}/{path.name}",
                    text=tune,
                )
            )
    return tasks


def folder_tasks(dataset: str, cfg: Mapping[str, Any]) -> list[PieceTask]:
    """Every MIDI, ABC (one task per tune), GuitarPro and JAMS file under a folder,
    recursively, sorted by relative path."""
    folder = Path(str(cfg.get("path", "")))
    if not cfg.get("path") or not folder.is_dir():
        raise FileNotFoundError(
            f"dataset.folders.{dataset}.path: folder {folder} not found; create it, fix the path "
            "or remove the entry"
        )
    return files_tasks(dataset, folder, sorted_files(folder, FOLDER_SUFFIXES), cfg)


def sorted_files(folder: Path, suffixes: tuple[str, ...], pattern: str = "**/*") -> list[Path]:
    """Files under `folder` matching `pattern` with one of `suffixes`, by relative path."""
    return sorted(
        (p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in suffixes),
        key=lambda p: p.relative_to(folder).as_posix(),
    )


def kind_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in ABC_SUFFIXES:
        return "abc"
    if suffix in GUITARPRO_SUFFIXES:
        return "guitarpro"
    return "jams" if suffix in JAMS_SUFFIXES else "folder"


def files_tasks(
    dataset: str,
    folder: Path,
    files: list[Path],
    cfg: Mapping[str, Any],
    splits: Mapping[str, str | None] | None = None,
    options: str = "",
    durations: Mapping[str, float] | None = None,
) -> list[PieceTask]:
    """One task per file (per tune for ABC files), named by the path relative to `folder`;
    `splits` maps a relative path to its official split, `durations` to its official duration."""
    tasks: list[PieceTask] = []
    used: set[str] = set()
    for path in files:
        rel = path.relative_to(folder).as_posix()
        name = safe_name(rel.rsplit(".", 1)[0].replace("/", "__"))
        if name in used:  # e.g. `a b.mid` and `a_b.mid`: disambiguate by the original path
            name = f"{name}_{hashlib.sha256(rel.encode()).hexdigest()[:8]}"
        used.add(name)
        common = {
            "dataset": dataset,
            "license": str(cfg.get("license", "")),
            "ref": str(path),
            "split": (splits or {}).get(rel),
            "options": options,
        }
        kind = kind_of(path)
        if kind == "abc":
            tasks += abc_file_tasks(path, name, f"folder:{folder.as_posix()}/{rel}", common)
            continue
        tasks.append(
            PieceTask(
                name=name,
                kind=kind,
                source=f"folder:{folder.as_posix()}/{rel}",
                official_duration_s=(durations or {}).get(rel),
                **common,
            )
        )
    return tasks


def abc_file_tasks(
    path: Path, stem: str, source: str, common: Mapping[str, Any]
) -> list[PieceTask]:
    """One `abc` task per tune of an ABC file, named `<stem>_x<number>`."""
    tunes = split_abc_tunes(path.read_text(encoding="utf-8", errors="replace"))
    names = unique_names(
        [safe_name(f"{stem}_x{number or i + 1}") for i, (number, _) in enumerate(tunes)]
    )
    return [
        PieceTask(
            name=name, kind="abc", source=f"{source}#X:{number or i + 1}", text=tune, **common
        )
        for i, ((number, tune), name) in enumerate(zip(tunes, names, strict=True))
    ]


def registry_source_tasks(dataset: str, cfg: Mapping[str, Any]) -> list[PieceTask]:
    from midilm.datasets.listing import registry_tasks

    return registry_tasks(dataset, cfg)


SOURCE_KINDS = {
    "music21_chorales": chorale_tasks,
    "music21_abc": abc_tasks,
    "registry": registry_source_tasks,
}


def select(
    tasks: list[PieceTask], dataset: str, cfg: Mapping[str, Any], cap: int | None = None
) -> list[PieceTask]:
    """Apply the optional `names` list (piece names, e.g. bwv277) then `max_pieces`, and `cap`
    (`dataset.max_pieces_per_source`, any dataset: what the smoke profile sets)."""
    names = cfg.get("names")
    if names:
        wanted = [str(n) for n in names]
        known = {t.name for t in tasks}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise ValueError(
                f"dataset.sources.{dataset}.names: {unknown} not found; names look like "
                f"{[t.name for t in tasks[:3]]}"
            )
        tasks = [t for t in tasks if t.name in set(wanted)]
    limits = [int(n) for n in (cfg.get("max_pieces"), cap) if n is not None]
    return tasks[: min(limits)] if limits else tasks


def enabled_sources(params: DictConfig) -> dict[str, dict[str, Any]]:
    """The enabled `dataset.sources` entries, plain dicts, in name order."""
    sources = plain_dict(params.dataset.get("sources"))
    return {name: cfg for name, cfg in sorted(sources.items()) if cfg.get("enabled", True)}


def folder_sources(params: DictConfig) -> dict[str, dict[str, Any]]:
    return dict(sorted(plain_dict(params.dataset.get("folders")).items()))


def collect_tasks(params: DictConfig) -> list[PieceTask]:
    """Every piece of every enabled source and folder, in a deterministic order."""
    tasks: list[PieceTask] = []
    seen: set[str] = set()
    cap = params.dataset.get("max_pieces_per_source")
    for name, cfg in enabled_sources(params).items():
        kind = cfg.get("kind")
        if kind not in SOURCE_KINDS:
            raise ValueError(
                f"dataset.sources.{name}.kind: {kind!r} is not one of {sorted(SOURCE_KINDS)}; "
                "user MIDI folders go under dataset.folders"
            )
        tasks += select(SOURCE_KINDS[kind](name, cfg), name, cfg, cap)
        seen.add(name)
    for name, cfg in folder_sources(params).items():
        if name in seen:
            raise ValueError(f"dataset.folders.{name}: the name is also a source; rename one")
        tasks += select(folder_tasks(name, cfg), name, cfg, cap)
    dupes = sorted(i for i, n in Counter(t.id for t in tasks).items() if n > 1)[:5]
    if dupes:  # a bug in a source's naming, not the user's: fail before the work starts
        raise ValueError(f"duplicate piece ids {dupes}; piece names must be unique per dataset")
    return tasks


def plain_dict(node: Any) -> dict[str, Any]:
    """An OmegaConf node (or None, or a mapping) as a plain dict."""
    if node is None:
        return {}
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    return dict(node)
