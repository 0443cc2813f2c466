"""Write the static results site: an index (tables, DVC metrics, loss curves, lo-fi mixes,
listening test) and a page per model (each sample's piano roll and audio beside the reference
piece it continued).

The site opens from the file system with no network: no CDN, no scripts, one local stylesheet.
Audio and MIDI are linked relative to each page, never copied or inlined, so the site stays small
and points at the DVC outputs it shows. The whole folder is swapped into place at the end
(`atomic_dir`); the same inputs give byte-identical HTML and PNGs.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from tqdm import tqdm

from midilm.common.io import atomic_dir, write_text_atomic
from midilm.common.logging import get_logger, progress_disabled
from midilm.common.paths import Layout
from midilm.report.provenance import Provenance
from midilm.report.site import figures
from midilm.report.site.inputs import (
    SAFE_KEY,
    AudioRef,
    ModelView,
    PieceView,
    discover_models,
    read_lofi,
    read_model,
    read_tables,
)
from midilm.specs.model import samples_stage

log = get_logger(__name__)

LISTENING_TABLE = "T8_listening"
ROLL_PX = (int(figures.ROLL_SIZE_IN[0] * figures.DPI), int(figures.ROLL_SIZE_IN[1] * figures.DPI))
CURVE_PX = (
    int(figures.CURVE_SIZE_IN[0] * figures.DPI),
    int(figures.CURVE_SIZE_IN[1] * figures.DPI),
)
OVERVIEW_PX = (800, 360)


@dataclass
class Image:
    src: str | None
    alt: str
    width: int
    height: int
    missing: str = ""


@dataclass
class Player:
    src: str | None
    links: list[tuple[str, str]] = field(default_factory=list)
    seconds: str = ""
    missing: str = ""


def build_site(
    root: Path,
    out_dir: Path | None = None,
    models: Sequence[str] | None = None,
    provenance: Provenance | None = None,
) -> list[Path]:
    """Write the site for repository `root` to `out_dir` (default `<root>/reports/site`).

    `models`: the model keys to show, in order (default: every model with an output under
    `root`). `provenance`: the line the site carries (default: the tables' own line).
    Returns the files written (under `out_dir`).
    """
    layout = Layout(Path(root))
    out_dir = Path(out_dir) if out_dir is not None else layout.site_dir
    keys = _usable_keys(models if models is not None else discover_models(layout))
    with atomic_dir(out_dir) as tmp:
        SiteWriter(layout, out_dir, tmp, provenance).write(keys)
        written = sorted(p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file())
    log.info("site: %d files in %s (%d models)", len(written), out_dir, len(keys))
    return [out_dir / p for p in written]


class SiteWriter:
    """Renders into `tmp` pages whose links are relative to their final place under `final`."""

    def __init__(self, layout: Layout, final: Path, tmp: Path, provenance: Provenance | None):
        self.layout, self.final, self.tmp = layout, final, tmp
        self.provenance = provenance
        self.line = ""
        self.env = Environment(
            loader=PackageLoader("midilm.report.site", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    # links -----------------------------------------------------------------------------------
    def repo_link(self, repo_path: str | None, page: str) -> str | None:
        """Relative URL from site page `page` to `<root>/<repo_path>`; None if no such file."""
        if not repo_path:
            return None
        target = Path(repo_path)
        target = target if target.is_absolute() else self.layout.root / target
        if not target.is_file():
            return None
        page_dir = (self.final / page).parent
        return quote(Path(os.path.relpath(target.resolve(), page_dir.resolve())).as_posix())

    @staticmethod
    def site_link(site_path: str, page: str) -> str:
        return quote(Path(os.path.relpath(site_path, Path(page).parent)).as_posix())

    # pieces ----------------------------------------------------------------------------------
    def player(self, audio: AudioRef | None, page: str, missing: str) -> Player:
        if audio is None:
            return Player(None, missing=missing)
        links = []
        for name, path in (("MP3", audio.mp3), ("FLAC", audio.flac), ("MIDI", audio.midi)):
            href = self.repo_link(path, page)
            if href:
                links.append((name, href))
        src = self.repo_link(audio.mp3, page) or self.repo_link(audio.flac, page)
        gone = ", ".join(p for p in (audio.mp3, audio.flac) if p) or "no audio path given"
        seconds = f"{audio.seconds:.1f} s" if audio.seconds is not None else ""
        return Player(src, links, seconds, "" if src else f"audio file missing: {gone}")

    def roll(self, piece: PieceView, image: str, page: str, alt: str) -> Image:
        if not piece.midi:
            return Image(None, alt, *ROLL_PX, missing="no MIDI path given")
        midi = Path(piece.midi)
        midi = midi if midi.is_absolute() else self.layout.root / midi
        target = self.tmp / image
        problem = None
        if not target.exists():  # a reference shared by several samples is drawn once
            problem = figures.piano_roll(midi, target, piece.highlight_notes)
        if problem:
            return Image(None, alt, *ROLL_PX, missing=problem)
        return Image(self.site_link(image, page), alt, *ROLL_PX)

    def piece(self, piece: PieceView, image: str, page: str, what: str, key: str) -> dict:
        return {
            "id": piece.id,
            "roll": self.roll(piece, image, page, f"piano roll of {what} {piece.id}"),
            "audio": self.player(
                piece.audio,
                page,
                f"audio not rendered yet (run `dvc repro render@{key}`)",
            ),
            "metrics": sorted(piece.metrics.items()),
        }

    # pages -----------------------------------------------------------------------------------
    def write(self, keys: list[str]) -> None:
        self.line = self.provenance_line()
        self.write_text("site.css", self._template_text("site.css"))
        views = []
        bar = tqdm(keys, desc="site", unit="model", disable=progress_disabled())
        for key in bar:
            view = read_model(self.layout, key)
            self.write_model_page(view)
            views.append(view)
        self.write_index(views)

    def write_model_page(self, view: ModelView) -> None:
        page = f"models/{view.key}.html"
        samples = []
        for index, entry in enumerate(view.samples):
            reference = None
            if entry.reference is not None:
                digest = hashlib.sha256(
                    f"{entry.reference.midi}|{entry.reference.highlight_notes}".encode()
                ).hexdigest()[:16]
                reference = self.piece(
                    entry.reference, f"img/references/{digest}.png", page, "reference", view.key
                )
            samples.append(
                {
                    "id": entry.sample.id,
                    "sample": self.piece(
                        entry.sample,
                        f"img/{view.key}/{index:03d}_{_slug(entry.sample.id)}.png",
                        page,
                        "sample",
                        view.key,
                    ),
                    "reference": reference,
                    "facts": sorted(entry.facts.items()),
                }
            )
        self.render(
            page,
            "model.html",
            title=f"midilm: model {view.key}",
            key=view.key,
            generate_stage=samples_stage(view.key),
            index=self.site_link("index.html", page),
            problems=view.problems,
            curve=self.curve(view, page),
            train_metrics=sorted(view.train_metrics.items()),
            music_metrics=sorted(view.music_metrics.items()),
            settings=sorted(view.settings.items()),
            samples=samples,
        )

    def curve(self, view: ModelView, page: str) -> Image:
        image = f"img/loss/{view.key}.png"
        alt = f"training and validation loss of {view.key}"
        if view.train_log is None:
            return Image(None, alt, *CURVE_PX, missing="no train_log.csv")
        if not (self.tmp / image).exists():
            problem = figures.loss_curve(view.train_log, self.tmp / image, view.key)
            if problem:
                return Image(None, alt, *CURVE_PX, missing=problem)
        return Image(self.site_link(image, page), alt, *CURVE_PX)

    def write_index(self, views: list[ModelView]) -> None:
        page = "index.html"
        tables_dir = self.layout.tables_dir
        tables = []
        for table in read_tables(tables_dir):
            entry: dict[str, Any] = dict(table.__dict__)
            for ext in ("md", "csv", "tex"):
                entry[f"link_{ext}"] = self.repo_link(
                    str(table.source.with_suffix(f".{ext}")), page
                )
            tables.append(entry)
        overview_path = "img/loss/overview.png"
        logs = {v.key: v.train_log for v in views if v.train_log is not None}
        problem = figures.loss_overview(logs, self.tmp / overview_path) if logs else "no logs"
        overview = Image(
            None if problem else overview_path,
            "validation loss of every model",
            *OVERVIEW_PX,
            missing="No loss curves yet (no models/<key>/train_log.csv; run `dvc repro train`)."
            if problem
            else "",
        )
        lofi, lofi_problem = read_lofi(self.layout)
        ratings = self.layout.ratings_file
        self.render(
            page,
            "index.html",
            title="midilm results",
            tables=tables,
            tables_dir=tables_dir.as_posix(),
            metric_blocks=[
                _metric_block("Training (models/<key>/metrics.json)", views, "train_metrics"),
                _metric_block(
                    "Music metrics (outputs/metrics/<key>/music_metrics.json)",
                    views,
                    "music_metrics",
                ),
            ],
            overview=overview,
            curves=[
                {"key": v.key, "page": f"models/{v.key}.html", "image": self.curve(v, page)}
                for v in views
            ],
            models=[
                {
                    "key": v.key,
                    "page": f"models/{v.key}.html",
                    "samples": len(v.samples),
                    "has_audio": v.has_audio,
                    "problems": len(v.problems),
                }
                for v in views
            ],
            lofi=[
                {
                    "id": mix.id,
                    "audio": self.player(mix.audio, page, "mix not rendered"),
                    "metadata": sorted(mix.metadata.items()),
                }
                for mix in lofi
            ],
            lofi_problem=None if lofi else (lofi_problem or "lofi.json lists no mixes."),
            listening_table=LISTENING_TABLE
            if any(t["name"] == LISTENING_TABLE for t in tables)
            else None,
            ratings_link=self.repo_link(str(ratings), page),
            ratings_name=ratings.relative_to(self.layout.root).as_posix()
            if ratings.is_relative_to(self.layout.root)
            else ratings.as_posix(),
        )

    def render(self, page: str, template: str, **context: Any) -> None:
        context["provenance"] = self.line
        context["css"] = self.site_link("site.css", page)
        self.write_text(page, self.env.get_template(template).render(**context))

    def provenance_line(self) -> str:
        """The given provenance, else the line most of the tables carry."""
        if self.provenance is not None:
            return self.provenance.line()
        lines = [t.provenance for t in read_tables(self.layout.tables_dir)]
        counts = Counter(line for line in lines if line)
        if not counts:
            return "Provenance: not recorded (no tables yet)"
        return max(sorted(counts), key=lambda line: counts[line])

    def write_text(self, site_path: str, text: str) -> None:
        write_text_atomic(self.tmp / site_path, text)

    def _template_text(self, name: str) -> str:
        source, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
        return source


def _metric_block(caption: str, views: list[ModelView], attribute: str) -> dict[str, Any]:
    have = [v for v in views if getattr(v, attribute)]
    names = sorted({name for v in have for name in getattr(v, attribute)})
    return {
        "caption": caption,
        "models": [v.key for v in have],
        "rows": [(name, [getattr(v, attribute).get(name, "") for v in have]) for name in names],
    }


def _usable_keys(keys: Sequence[str]) -> list[str]:
    usable = []
    for key in keys:
        if SAFE_KEY.match(str(key)):
            usable.append(str(key))
        else:
            log.warning("site: model key %r skipped: not usable as a file name", key)
    return usable


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)[:60] or "piece"
