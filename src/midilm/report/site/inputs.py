"""What the site shows, read from the DAG's files.

Every reader tolerates a missing or broken input: it returns what it could read plus a `problem`
sentence (which file, what was wrong, which stage makes it) that the page prints, so one bad
file never stops the site.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from midilm.common.paths import Layout
from midilm.specs.model import SEQGAN_SAMPLES, samples_stage

TABLE_STEM = re.compile(r"^T(\d+)[a-z]?_[A-Za-z0-9_]+$")  # T1_datasets, T5b_distribution
SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
PIPE_SPLIT = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True)
class ResultsTable:
    """One results table as its Markdown file states it (title, cells, notes, provenance)."""

    name: str
    source: Path
    title: str = ""
    header: list[str] = field(default_factory=list)
    right_aligned: list[bool] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    provenance: str = ""
    problem: str | None = None


@dataclass(frozen=True)
class AudioRef:
    """Rendered audio of one piece; paths relative to the repository root (None: not rendered)."""

    mp3: str | None = None
    flac: str | None = None
    midi: str | None = None
    seconds: float | None = None

    @property
    def playable(self) -> str | None:
        return self.mp3 or self.flac


@dataclass
class PieceView:
    """A generated sample or the reference piece it continued."""

    id: str
    midi: str | None
    audio: AudioRef | None = None
    metrics: dict[str, str] = field(default_factory=dict)
    highlight_notes: int = 0  # the first notes (by onset) that came from the prompt


@dataclass
class SampleView:
    sample: PieceView
    reference: PieceView | None
    facts: dict[str, str] = field(default_factory=dict)


@dataclass
class ModelView:
    key: str
    train_metrics: dict[str, str] = field(default_factory=dict)
    music_metrics: dict[str, str] = field(default_factory=dict)
    train_log: Path | None = None
    settings: dict[str, str] = field(default_factory=dict)
    samples: list[SampleView] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    has_audio: bool = False


@dataclass
class LofiMix:
    id: str
    audio: AudioRef
    metadata: dict[str, str]


def read_json_file(path: Path, stage: str) -> tuple[Any, str | None]:
    """(data, None), or (None, a sentence naming the file, the fault and the stage to run)."""
    if not path.is_file():
        return None, f"{path.as_posix()} is missing (run `dvc repro {stage}`)."
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path.as_posix()} could not be read ({exc}); re-run `dvc repro {stage}`."


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested JSON as sorted `a.b.c` -> text; numbers as JSON writes them."""
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for key in sorted(data, key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(flatten(data[key], name))
    elif isinstance(data, list):
        out[prefix] = json.dumps(data, sort_keys=True)
    else:
        out[prefix] = "" if data is None else (data if isinstance(data, str) else json.dumps(data))
    return out


def table_order(name: str) -> tuple[int, str]:
    match = TABLE_STEM.match(name)
    return (int(match.group(1)) if match else 10**6, name)


def read_tables(tables_dir: Path) -> list[ResultsTable]:
    """Every `T<n>_*.md` of `tables_dir`, ordered T1, T2, ..., T10."""
    if not tables_dir.is_dir():
        return []
    stems = [p.stem for p in tables_dir.glob("T*.md") if TABLE_STEM.match(p.stem)]
    return [read_table(tables_dir / f"{stem}.md") for stem in sorted(stems, key=table_order)]


def read_table(path: Path) -> ResultsTable:
    """Parse a table written by `midilm.report.tables.Table.to_markdown`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return ResultsTable(path.stem, path, problem=f"{path.as_posix()}: unreadable ({exc})")
    title, notes, provenance, grid = "", [], "", []
    for line in lines:
        text = line.strip()
        if text.startswith("**") and text.endswith("**") and not title:
            title = _unescape(text[2:-2])
        elif text.startswith("|") and text.endswith("|"):
            grid.append([_unescape(c.strip()) for c in PIPE_SPLIT.split(text[1:-1])])
        elif text.startswith("Note: "):
            notes.append(_unescape(text[len("Note: ") :]))
        elif text.startswith("Provenance: "):
            provenance = text
    if len(grid) < 2 or any(len(row) != len(grid[0]) for row in grid):
        return ResultsTable(
            path.stem,
            path,
            title=title or path.stem,
            problem=f"{path.as_posix()}: no well-formed Markdown table; re-run `dvc repro report`.",
        )
    align = [cell.endswith(":") and not cell.startswith(":") for cell in grid[1]]
    return ResultsTable(
        path.stem, path, title or path.stem, grid[0], align, grid[2:], notes, provenance
    )


def discover_models(layout: Layout) -> list[str]:
    """Model keys that have any output: trained, sampled, rendered or scored (sorted)."""
    found: set[str] = set()
    patterns = [
        (layout.root / "models", ("metrics.json", "train_log.csv")),
        (layout.root / "outputs" / "samples", ("samples.json",)),
        (layout.audio_dir("x").parent, ("audio.json",)),
        (layout.root / "outputs" / "metrics", ("music_metrics.json",)),
    ]
    for parent, files in patterns:
        if parent.is_dir():
            for folder in parent.iterdir():
                if folder.is_dir() and any((folder / f).is_file() for f in files):
                    found.add(folder.name)
    return sorted(k for k in found if SAFE_KEY.match(k))


def read_model(layout: Layout, key: str) -> ModelView:
    """Everything the model page shows; each missing input becomes a problem sentence."""
    view = ModelView(key)
    seqgan = key == SEQGAN_SAMPLES  # SeqGAN's melodies: trained by seqgan_music, no train_log
    trained = layout.seqgan_dir("music") if seqgan else layout.model_dir(key)
    metrics, problem = read_json_file(trained / "metrics.json", samples_stage(key, "train"))
    if seqgan and isinstance(metrics, dict):
        metrics = {"task": metrics.get("rows"), "sizes": metrics.get("sizes")}
    view.train_metrics = flatten(metrics) if isinstance(metrics, dict) else {}
    _note(view, problem)
    music, problem = read_json_file(
        layout.metrics_dir(key) / "music_metrics.json", samples_stage(key, "evaluate")
    )
    view.music_metrics = flatten(music) if isinstance(music, dict) else {}
    _note(view, problem)
    log = layout.model_dir(key) / "train_log.csv"
    view.train_log = log if log.is_file() else None
    if view.train_log is None and not seqgan:
        _note(view, f"{log.as_posix()} is missing (run `dvc repro train@{key}`).")

    per_piece, problem = read_per_piece(layout.metrics_dir(key) / "per_piece.csv", key)
    _note(view, problem)
    audio, problem = read_audio_index(layout.audio_dir(key) / "audio.json", key)
    view.has_audio = bool(audio)
    _note(view, problem)
    samples_file = layout.samples_dir(key) / "samples.json"
    samples, problem = read_json_file(samples_file, samples_stage(key, "generate"))
    _note(view, problem)
    if samples is not None and not (
        isinstance(samples, dict) and isinstance(samples.get("samples"), list)
    ):
        _note(view, f"{layout.samples_dir(key).as_posix()}/samples.json has no `samples` list.")
        samples = None
    if samples is None:
        return view
    view.settings = flatten(samples.get("settings") or {})
    for entry in samples["samples"]:
        if isinstance(entry, dict):
            view.samples.append(_sample_view(entry, audio, per_piece))
    return view


def _sample_view(
    entry: dict[str, Any],
    audio: dict[str, tuple[AudioRef, AudioRef | None]],
    per_piece: dict[tuple[str, str], dict[str, str]],
) -> SampleView:
    file = str(entry.get("file") or Path(str(entry.get("path", "sample"))).name)
    stem = Path(file).stem
    path = entry.get("path")
    sample_audio, reference_audio = audio.get(str(path), audio.get(stem, (None, None)))
    prompt_notes = _int(entry.get("prompt_notes"))
    sample = PieceView(
        stem,
        str(path) if path else None,
        sample_audio,
        per_piece.get(("generated", file), {}),
        prompt_notes,
    )
    reference = None
    reference_id = entry.get("reference_id")
    if reference_id is not None or entry.get("reference_path"):
        reference = PieceView(
            str(reference_id),
            str(entry["reference_path"]) if entry.get("reference_path") else None,
            reference_audio,
            per_piece.get(("test", str(reference_id)), {}),
            prompt_notes,
        )
    facts = {
        name: str(entry[name])
        for name in ("prompt_tokens", "prompt_notes", "generated_tokens", "notes", "dropped_tokens")
        if name in entry
    }
    return SampleView(sample, reference, facts)


def read_per_piece(
    path: Path, key: str
) -> tuple[dict[tuple[str, str], dict[str, str]], str | None]:
    """per_piece.csv rows by (group, id): the metric cells (blank ones dropped)."""
    stage = samples_stage(key, "evaluate")
    if not path.is_file():
        return {}, f"{path.as_posix()} is missing (run `dvc repro {stage}`)."
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return (
            {},
            f"{path.as_posix()} could not be read ({exc}); re-run `dvc repro {stage}`.",
        )
    out = {}
    for row in rows:
        group, piece = row.pop("group", None), row.pop("id", None)
        if group and piece:
            out[(group, piece)] = {k: v for k, v in row.items() if k and v}
    return out, None


def read_audio_index(
    path: Path, key: str
) -> tuple[dict[str, tuple[AudioRef, AudioRef | None]], str | None]:
    """audio.json items by the sample's MIDI path and by item id: (sample, reference) audio."""
    data, problem = read_json_file(path, samples_stage(key, "render"))
    if data is None:
        return {}, problem
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        stage = samples_stage(key, "render")
        return {}, f"{path.as_posix()} has no `items` list; re-run `dvc repro {stage}`."
    out: dict[str, tuple[AudioRef, AudioRef | None]] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("sample"), dict):
            continue
        sample = audio_ref(item["sample"])
        reference = (
            audio_ref(item["reference"]) if isinstance(item.get("reference"), dict) else None
        )
        for name in (item["sample"].get("midi"), item.get("id")):
            if name:
                out[str(name)] = (sample, reference)
    return out, None


def audio_ref(entry: dict[str, Any]) -> AudioRef:
    seconds = entry.get("seconds")
    return AudioRef(
        _text(entry.get("mp3")),
        _text(entry.get("flac")),
        _text(entry.get("midi")),
        float(seconds) if isinstance(seconds, int | float) else None,
    )


def read_lofi(layout: Layout) -> tuple[list[LofiMix], str | None]:
    path = layout.lofi_dir / "lofi.json"
    data, problem = read_json_file(path, "lofi")
    if data is None:
        return [], problem
    mixes = data.get("mixes") if isinstance(data, dict) else None
    if not isinstance(mixes, list):
        return [], f"{path.as_posix()} has no `mixes` list; re-run `dvc repro lofi`."
    out = []
    for index, mix in enumerate(mixes):
        if isinstance(mix, dict):
            metadata = mix.get("metadata") if isinstance(mix.get("metadata"), dict) else {}
            out.append(
                LofiMix(str(mix.get("id") or f"mix_{index:03d}"), audio_ref(mix), flatten(metadata))
            )
    return out, None


def _note(view: ModelView, problem: str | None) -> None:
    if problem:
        view.problems.append(problem)


def _unescape(text: str) -> str:
    return text.replace(r"\|", "|")


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def _int(value: Any) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0
