"""The per-piece work, run in a worker process: read, convert, validate, canonicalize, hash."""

from __future__ import annotations

from dataclasses import dataclass

from symusic.core import ScoreTick

from midilm.datasets.content_hash import note_content_hash, transposition_hash
from midilm.datasets.converters import convert, failure_reason
from midilm.datasets.inputs import InputError, display_text
from midilm.datasets.music21_export import SourceError
from midilm.datasets.sources import PieceTask
from midilm.datasets.validate import (
    Rejected,
    check_filters,
    check_note_count,
    check_values,
    load_midi,
    score_stats,
)
from midilm.specs.dataset import FilterSpec
from midilm.tokenize.midi_channels import share_channel_controls


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
    transposition_hash: str = ""
    programs: tuple[int, ...] = ()  # distinct programs of the non-drum tracks with notes
    has_drums: bool = False
    tempo: float | None = None  # the first tempo, quarter notes per minute
    time_signature: str | None = None  # the first time signature, e.g. "4/4"

    @property
    def kept(self) -> bool:
        return self.midi is not None


def quarantined(task: PieceTask, reason: str, detail: str) -> PieceResult:
    return PieceResult(task=task, reason=reason, detail=display_text(detail))


def score_meta(score: ScoreTick) -> dict[str, object]:
    """Programs, drums, first tempo and meter of a score (manifest columns)."""
    sounding = [t for t in score.tracks if t.note_num() > 0]
    tempo = float(score.tempos[0].qpm) if len(score.tempos) else None
    meter = score.time_signatures[0] if len(score.time_signatures) else None
    return {
        "programs": tuple(sorted({int(t.program) for t in sounding if not t.is_drum})),
        "has_drums": any(t.is_drum for t in sounding),
        "tempo": round(tempo, 3) if tempo is not None else None,
        "time_signature": f"{meter.numerator}/{meter.denominator}" if meter else None,
    }


def process_piece(task: PieceTask, filters: FilterSpec) -> PieceResult:
    """Materialize one piece; never raises for a bad piece, returns a quarantine result instead.

    Every step, reading and hashing included, is inside the handler. The canonical MIDI is
    symusic's dump of the loaded score, reloaded for the stats and hash, so the manifest
    describes exactly the bytes that are stored.
    """
    try:
        return _materialize(task, filters)
    except (SourceError, Rejected, InputError) as error:
        if isinstance(error.__cause__, MemoryError):  # a reader that wraps every exception
            return _out_of_memory(task, error.__cause__)
        return quarantined(task, error.reason, str(error))
    except MemoryError as error:
        return _out_of_memory(task, error)
    except Exception as error:  # a reader bug on odd input is still this file's problem
        return quarantined(task, failure_reason(task), f"{type(error).__name__}: {error}")


def _out_of_memory(task: PieceTask, error: MemoryError) -> PieceResult:
    return quarantined(task, "too_large", f"MemoryError {error} (over dataset.worker_memory_mb)")


def _materialize(task: PieceTask, filters: FilterSpec) -> PieceResult:
    data, repairs = convert(task, filters)
    # channel-wide controllers (sustain pedal, volume, expression) stored on a track of their
    # own reach the tracks they act on, so no later reader of the canonical file loses them
    score = load_midi(share_channel_controls(data))
    check_values(score, filters)
    check_note_count(int(score.note_num()), filters)
    canonical = score.dumps_midi()
    del score
    score = load_midi(canonical)
    stats = score_stats(score)
    check_filters(stats, filters)
    return PieceResult(
        task=task,
        midi=canonical,
        content_hash=note_content_hash(score),
        duration_s=stats.duration_s,
        n_notes=stats.n_notes,
        n_tracks=stats.n_tracks,
        repairs=repairs,
        transposition_hash=transposition_hash(score),
        **score_meta(score),  # type: ignore[arg-type]
    )
