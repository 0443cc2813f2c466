"""Dataset sources: turn the `dataset` spec into a deterministic list of pieces to materialize,
and a line for every input that gives none.

Four kinds: `music21_chorales` (music21's chorale iterator), `music21_abc` (every tune of the
ABC files in a music21 corpus folder), `registry` (an entry of `registry.yaml`, listed by
`midilm.datasets.listing`) and `folder` (every MIDI, ABC, GuitarPro and JAMS file under a user
folder). Listing never stops on one input: a file that cannot be listed or read here becomes an
`InputIssue` (quarantined or skipped, with its reason).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from midilm.datasets.inputs import (
    Found,
    InputError,
    decode_text,
    disambiguate,
    display_text,
    read_input,
    safe_name,
    walk,
)
from midilm.specs.dataset import DatasetSpec, SourceSpec

MUSIC21_KINDS = ("music21_chorales", "music21_abc")
MIDI_SUFFIXES = (".mid", ".midi")
ABC_SUFFIXES = (".abc",)
GUITARPRO_SUFFIXES = (".gp3", ".gp4", ".gp5", ".gtp")
JAMS_SUFFIXES = (".jams",)
FOLDER_SUFFIXES = MIDI_SUFFIXES + ABC_SUFFIXES + GUITARPRO_SUFFIXES + JAMS_SUFFIXES
_TUNE_START = re.compile(r"(?m)^(?=X:)")
_TUNE_NUMBER = re.compile(r"X:\s*(\S*)")
_KEY_LINE = re.compile(r"(?m)^K:")


@dataclass(frozen=True)
class PieceTask:
    """One piece to materialize: where it comes from and what the worker needs to read it."""

    dataset: str
    name: str  # piece name inside the dataset; the id is f"{dataset}/{name}"
    kind: str  # the converter: folder/midi | music21_chorales | music21_abc/abc | pianoroll |
    #            guitarpro | jams (midilm.datasets.converters.CONVERTERS)
    source: str  # provenance as text, e.g. "music21:bach/bwv269" (display_text of paths)
    license: str
    ref: str  # corpus name (chorales) or file path (folder, midi, guitarpro, jams), as the OS
    #           gives it (it may hold undecodable bytes as surrogates: never written out)
    text: str = ""  # the tune's ABC text (abc) or the piano-roll steps as JSON (pianoroll)
    split: str | None = None  # the dataset's official split, None where it defines none
    options: str = ""  # converter options as JSON text (e.g. DadaGP's artist filter)
    official_duration_s: float | None = None  # the dataset's own duration (Groove info.csv)
    input: str = ""  # the input file as text (display_text): one file may give many pieces

    @property
    def id(self) -> str:
        return f"{self.dataset}/{self.name}"


@dataclass(frozen=True)
class InputIssue:
    """An input that gives no piece: quarantined (a bad file) or skipped (not a music file)."""

    dataset: str
    source: str
    input: str
    reason: str
    detail: str
    quarantined: bool


@dataclass
class Listing:
    """What a source lists: its pieces, and the inputs that give none."""

    tasks: list[PieceTask] = field(default_factory=list)
    issues: list[InputIssue] = field(default_factory=list)

    def extend(self, other: Listing) -> None:
        self.tasks += other.tasks
        self.issues += other.issues


@dataclass(frozen=True)
class ReadRules:
    """How inputs are read while listing: the file-size bound and the link policy."""

    max_file_bytes: int
    links: str

    @classmethod
    def of(cls, spec: DatasetSpec) -> ReadRules:
        return cls(max_file_bytes=spec.filters.max_file_bytes, links=spec.links)


def music21_corpus_dir() -> Path:
    from music21 import common

    return Path(common.getCorpusFilePath())


def unique_names(names: list[str]) -> list[str]:
    """Names made unique in order: the k-th repeat of `a` becomes `a_k` (k >= 2)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


def chorale_tasks(dataset: str, cfg: SourceSpec, rules: ReadRules | None = None) -> Listing:
    """music21's 371 chorales, in the iterator's order (`rules` unused: music21 reads them).

    The 371 (Riemenschneider's numbering) hold 21 chorales twice, e.g. bach/bwv267: the second
    one is named `bwv267_2`; equal content gives it the same split as the first.
    """
    from music21 import corpus

    names = list(corpus.chorales.Iterator(returnType="filename"))
    piece_names = unique_names([safe_name(name.split("/")[-1]) for name in names])
    return Listing(
        [
            PieceTask(
                dataset=dataset,
                name=piece_name,
                kind="music21_chorales",
                source=f"music21:{name}",
                license=cfg.license,
                ref=name,
                input=f"music21:{name}",
            )
            for name, piece_name in zip(names, piece_names, strict=True)
        ]
    )


def split_abc_tunes(text: str) -> list[tuple[str, str]]:
    """Split an ABC file's text at lines starting `X:`; return (tune number, tune text) pairs.
    A file without `X:` lines but with a `K:` line is one tune (numbered 1)."""
    tunes = []
    for chunk in _TUNE_START.split(text):
        if chunk.startswith("X:"):
            match = _TUNE_NUMBER.match(chunk)
            tunes.append((match.group(1) if match else "", chunk))
    if not tunes and _KEY_LINE.search(text):
        tunes.append(("1", f"X:1\n{text}"))
    return tunes


def abc_tasks(dataset: str, cfg: SourceSpec, rules: ReadRules) -> Listing:
    """Every tune of the .abc files of a music21 corpus folder: files sorted, tunes in order."""
    if not cfg.corpus_dir:
        raise ValueError(
            f"dataset.sources.{dataset}: kind music21_abc needs `corpus_dir` (a folder of "
            f"{music21_corpus_dir()}, e.g. oneills1850)"
        )
    folder = music21_corpus_dir() / cfg.corpus_dir
    if not folder.is_dir():
        raise FileNotFoundError(
            f"dataset.sources.{dataset}.corpus_dir: {folder} not found; pick a folder of "
            f"{music21_corpus_dir()} or disable the source"
        )
    listing = Listing()
    taken: set[str] = set()
    for found in walk(folder, ABC_SUFFIXES, rules.links, "*.abc"):
        if found.reason in ("unsupported_suffix", "not_matched"):
            continue  # the corpus folder's other files are not this source's inputs
        ref = f"{cfg.corpus_dir}/{display_text(found.rel)}"  # the same on every machine
        source = f"music21:{ref}"
        common = {"dataset": dataset, "license": cfg.license, "ref": ref, "input": source}
        listing.extend(
            abc_file_tasks(
                found, Path(found.rel).stem, source, common, rules, taken, kind="music21_abc"
            )
        )
    return listing


def folder_tasks(dataset: str, cfg: SourceSpec, rules: ReadRules) -> Listing:
    """Every MIDI, ABC (one task per tune), GuitarPro and JAMS file under a folder,
    recursively, sorted by relative path; every other path with the reason it gives none."""
    folder = Path(cfg.path or "")
    if not cfg.path or not folder.is_dir():
        raise FileNotFoundError(
            f"dataset.folders.{dataset}.path: folder {folder} not found; create it, fix the path "
            "or remove the entry"
        )
    return files_tasks(dataset, folder, walk(folder, FOLDER_SUFFIXES, rules.links), cfg, rules)


def kind_of(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in ABC_SUFFIXES:
        return "abc"
    if suffix in GUITARPRO_SUFFIXES:
        return "guitarpro"
    return "jams" if suffix in JAMS_SUFFIXES else "folder"


def files_tasks(
    dataset: str,
    folder: Path,
    files: Iterable[Found],
    cfg: SourceSpec,
    rules: ReadRules,
    splits: Mapping[str, str | None] | None = None,
    options: str = "",
    durations: Mapping[str, float] | None = None,
) -> Listing:
    """One task per file (per tune for ABC files), named by the path relative to `folder`;
    `splits` maps a relative path to its official split, `durations` to its official duration.
    A name taken already (e.g. `a b.mid` and `a_b.mid`, or `song.abc`'s first tune and
    `song_x1.mid`, in any case) gets a hash of the relative path; a long one is shortened."""
    listing = Listing()
    taken: set[str] = set()
    root = display_text(folder.as_posix())
    for found in files:
        source = f"folder:{root}/{display_text(found.rel)}"
        if found.reason:
            listing.issues.append(
                issue(
                    dataset,
                    source,
                    display_text(found.path),
                    found.reason,
                    found.detail,
                    found.quarantined,
                )
            )
            continue
        stem = found.rel.rsplit(".", 1)[0].replace("/", "__")
        common = {
            "dataset": dataset,
            "license": cfg.license,
            "ref": found.path,
            "split": (splits or {}).get(found.rel),
            "options": options,
            "input": display_text(found.path),
        }
        kind = kind_of(found.rel)
        if kind == "abc":
            listing.extend(abc_file_tasks(found, stem, source, common, rules, taken))
            continue
        name = disambiguate(safe_name(stem), found.rel, taken)
        listing.tasks.append(
            PieceTask(
                name=name,
                kind=kind,
                source=source,
                official_duration_s=(durations or {}).get(found.rel),
                **common,
            )
        )
    return listing


def abc_file_tasks(
    found: Found,
    stem: str,
    source: str,
    common: Mapping[str, Any],
    rules: ReadRules,
    taken: set[str],
    kind: str = "abc",
) -> Listing:
    """One task per tune of an ABC file, named `<stem>_x<number>`; a file that cannot be read
    or holds no tune is one quarantined input."""
    try:
        tunes = split_abc_tunes(decode_text(read_input(found.path, rules.max_file_bytes)))
    except InputError as error:
        return Listing(
            issues=[
                issue(common["dataset"], source, common["input"], error.reason, str(error), True)
            ]
        )
    if not tunes:
        detail = "no tune: no line starts with `X:` (and no `K:` line)"
        return Listing(
            issues=[issue(common["dataset"], source, common["input"], "parse_error", detail, True)]
        )
    names = unique_names(  # a repeated X: number inside one file gets a suffix
        [safe_name(f"{stem}_x{number or i + 1}") for i, (number, _) in enumerate(tunes)]
    )
    tasks = []
    for i, ((number, tune), name) in enumerate(zip(tunes, names, strict=True)):
        tune_source = f"{source}#X:{display_text(number) or i + 1}"
        tasks.append(
            PieceTask(
                name=disambiguate(name, f"{found.rel}#{i}", taken),
                kind=kind,
                source=tune_source,
                text=tune,
                **common,
            )
        )
    return Listing(tasks)


def issue(
    dataset: str, source: str, input: str, reason: str, detail: str, quarantined: bool
) -> InputIssue:
    return InputIssue(
        dataset,
        display_text(source),
        display_text(input),
        reason,
        display_text(detail),
        quarantined,
    )


def select(listing: Listing, dataset: str, cfg: SourceSpec, cap: int | None = None) -> Listing:
    """Apply the optional `names` list (piece names, e.g. bwv277) then `max_pieces`, and `cap`
    (`dataset.max_pieces_per_source`, any dataset: what the smoke profile sets). Pieces left
    out are skipped inputs (`not_selected`)."""
    tasks = listing.tasks
    if cfg.names:
        known = {t.name for t in tasks}
        unknown = [n for n in cfg.names if n not in known]
        if unknown:
            raise ValueError(
                f"dataset: {dataset}.names: {unknown} not found; names look like "
                f"{[t.name for t in tasks[:3]]}"
            )
        tasks = [t for t in tasks if t.name in set(cfg.names)]
    limits = [n for n in (cfg.max_pieces, cap) if n is not None]
    kept = tasks[: min(limits)] if limits else tasks
    chosen = {t.id for t in kept}
    why = f"not in {dataset}.names, or past max_pieces / max_pieces_per_source={min(limits or [0])}"
    left_out = [
        issue(t.dataset, t.source, t.input, "not_selected", why, False)
        for t in listing.tasks
        if t.id not in chosen
    ]
    return Listing(kept, listing.issues + left_out)
