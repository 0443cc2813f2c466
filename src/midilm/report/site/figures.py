"""The site's PNGs (piano rolls, loss curves), drawn with matplotlib's Agg canvas.

No pyplot and no global backend switch: each figure is its own `Figure` on a `FigureCanvasAgg`.
PNGs are byte-reproducible: no `Software`/date metadata, fixed size, dpi and fonts (DejaVu,
bundled with matplotlib), so the same inputs give the same bytes.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from midilm.common.io import write_bytes_atomic

DPI = 100
ROLL_SIZE_IN = (8.0, 2.4)
CURVE_SIZE_IN = (6.0, 3.0)
ROLL_MAX_SECONDS = 120.0  # longer pieces are drawn up to here (the page says so)
PROMPT_COLOR, NOTE_COLOR, DRUM_COLOR = "#9aa3ad", "#1f5fa8", "#c0392b"
PNG_METADATA = {"Software": None}


def save_png(figure: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png", dpi=DPI, metadata=PNG_METADATA)
    write_bytes_atomic(path, buffer.getvalue())


def note_arrays(midi: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(onset s, duration s, pitch, is_drum) of every note, sorted by onset then pitch."""
    import symusic

    score = symusic.Score(str(midi)).to("second")
    starts, lengths, pitches, drums = [], [], [], []
    for track in score.tracks:
        arrays = track.notes.numpy()
        starts.append(arrays["time"].astype(float))
        lengths.append(arrays["duration"].astype(float))
        pitches.append(arrays["pitch"].astype(int))
        drums.append(np.full(len(arrays["pitch"]), bool(track.is_drum)))
    if not starts:
        empty = np.zeros(0)
        return empty, empty, empty.astype(int), empty.astype(bool)
    start, length = np.concatenate(starts), np.concatenate(lengths)
    pitch, drum = np.concatenate(pitches), np.concatenate(drums)
    order = np.lexsort((pitch, start))
    return start[order], length[order], pitch[order], drum[order]


def piano_roll(midi: Path, out: Path, prompt_notes: int = 0) -> str | None:
    """Draw `midi` as a piano roll to `out`; the first `prompt_notes` notes (by onset) in grey.

    Returns None, or a sentence saying why the roll could not be drawn (the page shows it).
    """
    if not midi.is_file():
        return f"{midi.as_posix()}: MIDI file not found"
    try:
        start, length, pitch, drum = note_arrays(midi)
    except Exception as exc:  # a corrupt MIDI file: say so on the page, draw the rest
        return f"{midi.as_posix()}: unreadable MIDI ({type(exc).__name__}: {exc})"
    figure = Figure(figsize=ROLL_SIZE_IN)
    axes = figure.add_subplot()
    end = float((start + length).max()) if len(start) else 1.0
    shown = min(max(end, 1.0), ROLL_MAX_SECONDS)
    if len(start):
        half = 0.42
        boxes = np.stack(
            [
                np.stack([start, pitch - half], 1),
                np.stack([start + np.maximum(length, 0.02), pitch - half], 1),
                np.stack([start + np.maximum(length, 0.02), pitch + half], 1),
                np.stack([start, pitch + half], 1),
            ],
            1,
        )
        colors = np.where(drum, DRUM_COLOR, NOTE_COLOR).astype(object)
        colors[: min(prompt_notes, len(colors))] = PROMPT_COLOR
        axes.add_collection(PolyCollection(list(boxes), facecolors=list(colors), linewidths=0))
        axes.set_ylim(float(pitch.min()) - 2, float(pitch.max()) + 2)
    else:
        axes.text(0.5, 0.5, "no notes", transform=axes.transAxes, ha="center", va="center")
        axes.set_ylim(40, 90)
    axes.set_xlim(0, shown)
    axes.set_xlabel("seconds" + (f" (first {ROLL_MAX_SECONDS:.0f} s)" if end > shown else ""))
    axes.set_ylabel("MIDI pitch")
    handles = [Patch(color=NOTE_COLOR, label="notes")]
    if prompt_notes:
        handles.insert(0, Patch(color=PROMPT_COLOR, label=f"prompt ({prompt_notes} notes)"))
    if drum.any():
        handles.append(Patch(color=DRUM_COLOR, label="drums (GM key)"))
    axes.legend(handles=handles, loc="upper right", fontsize="x-small", framealpha=0.8)
    axes.grid(axis="y", linewidth=0.3, alpha=0.5)
    figure.tight_layout()
    save_png(figure, out)
    return None


def read_loss_log(path: Path) -> dict[str, list[tuple[float, float]]]:
    """train_log.csv (step,train_loss,val_loss,lr) -> {"train": [(step, loss)], "val": [...]}."""
    curves: dict[str, list[tuple[float, float]]] = {"train": [], "val": []}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            for name in curves:
                value = _float(row.get(f"{name}_loss"))
                step = _float(row.get("step"))
                if value is not None and step is not None:
                    curves[name].append((step, value))
    return curves


def loss_curve(train_log: Path, out: Path, title: str) -> str | None:
    """Training and validation loss against step of one model."""
    try:
        curves = read_loss_log(train_log)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return f"{train_log.as_posix()}: unreadable ({exc})"
    if not curves["train"] and not curves["val"]:
        return f"{train_log.as_posix()}: no loss values (columns step,train_loss,val_loss)"
    figure = Figure(figsize=CURVE_SIZE_IN)
    axes = figure.add_subplot()
    if curves["train"]:
        axes.plot(*zip(*curves["train"], strict=True), linewidth=0.8, label="train loss")
    if curves["val"]:
        axes.plot(*zip(*curves["val"], strict=True), marker="o", markersize=3, label="val loss")
    _finish_curve(axes, title)
    figure.tight_layout()
    save_png(figure, out)
    return None


def loss_overview(train_logs: dict[str, Path], out: Path) -> str | None:
    """Validation loss of every model on one plot (train loss where a model has no val loss)."""
    figure = Figure(figsize=(8.0, 3.6))
    axes = figure.add_subplot()
    drawn = 0
    for key in sorted(train_logs):
        try:
            curves = read_loss_log(train_logs[key])
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        name, points = ("val", curves["val"]) if curves["val"] else ("train", curves["train"])
        if points:
            axes.plot(*zip(*points, strict=True), marker=".", label=f"{key} ({name})")
            drawn += 1
    if not drawn:
        return "no readable train_log.csv"
    _finish_curve(axes, "Validation loss per model")
    figure.tight_layout()
    save_png(figure, out)
    return None


def _finish_curve(axes, title: str) -> None:
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss (nats/token)")
    axes.set_title(title, fontsize="medium")
    axes.grid(linewidth=0.3, alpha=0.5)
    axes.legend(fontsize="x-small")


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None
