"""The per-piece work, run in a worker process: read or export, validate, canonicalize, hash."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from midilm.datasets.content_hash import note_content_hash
from midilm.datasets.music21_export import SourceError, export_abc, export_chorale
from midilm.datasets.sources import PieceTask
from midilm.datasets.validate import Filters, Rejected, check_filters, load_midi, score_stats


@dataclass(frozen=True)
class PieceResult:
    """A kept piece (`midi` holds its canonical bytes) or a quarantined one (`reason` set)."""

    task: PieceTask
    midi: bytes | None = None
    content_hash: str = ""
    duration_s: float = 0.0
    n_notes: int = 0
    n_tracks: int = 0
    reason: str = ""
    detail: str = ""
    repairs: tuple[str, ...] = ()  # e.g. ("shared_meter",): what was fixed before export

    @property
    def kept(self) -> bool:
        return self.midi is not None


def quarantined(task: PieceTask, reason: str, detail: str) -> PieceResult:
    return PieceResult(task=task, reason=reason, detail=detail)


def source_bytes(task: PieceTask) -> tuple[bytes, tuple[str, ...]]:
    """The piece as MIDI bytes, as the source gives it (music21 export or the file itself)."""
    if task.kind == "music21_chorales":
        return export_chorale(task.ref), ()
    if task.kind == "music21_abc":
        data, fixes = export_abc(task.text)
        return data, tuple(sorted(name for name, count in fixes.items() if count))
    try:
        return Path(task.ref).read_bytes(), ()
    except OSError as error:
        raise SourceError("parse_error", f"{type(error).__name__}: {error}") from error


def process_piece(task: PieceTask, filters: Filters) -> PieceResult:
    """Materialize one piece; never raises for a bad piece, returns a quarantine result instead.

    The canonical MIDI is symusic's dump of the loaded score, reloaded for the stats and hash, so
    the manifest describes exactly the bytes that are stored.
    """
    try:
        data, repairs = source_bytes(task)
        canonical = load_midi(data).dumps_midi()
        score = load_midi(canonical)
        stats = score_stats(score)
        check_filters(stats, filters)
    except (SourceError, Rejected) as error:
        return quarantined(task, error.reason, str(error))
    except Exception as error:  # a reader bug on odd input is still this file's problem
        reason = "export_error" if task.kind != "folder" else "parse_error"
        return quarantined(task, reason, f"{type(error).__name__}: {error}")
    return PieceResult(
        task=task,
        midi=canonical,
        content_hash=note_content_hash(score),
        duration_s=stats.duration_s,
        n_notes=stats.n_notes,
        n_tracks=stats.n_tracks,
        repairs=repairs,
    )
