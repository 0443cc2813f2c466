"""What a training run reports: metrics.json (deterministic), speed.json (measured), the loss
curve train_log.csv, and the values trackers get at each evaluation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from midilm.train.loop import TrainResult

METRICS_FILE, SPEED_FILE, TRAIN_LOG = "metrics.json", "speed.json", "train_log.csv"


def bits_per_note(val_loss: float, tokens: int, notes: int) -> float | None:
    """Validation loss per note in bits: nats/token x tokens/note / ln 2 (None without notes
    or without a finite loss)."""
    if not notes or not math.isfinite(val_loss):
        return None
    return val_loss * tokens / notes / math.log(2)


def validation_metrics(val_loss: float, tokens: int, notes: int) -> dict[str, float]:
    """What trackers get at each evaluation: loss, perplexity and (if known) bits per note."""
    values = {"val/loss": val_loss, "val/perplexity": math.exp(val_loss)}
    bits = bits_per_note(val_loss, tokens, notes)
    if bits is not None:
        values["val/bits_per_note"] = bits
    return values


def loss_metrics(
    result: TrainResult, steps: int, eval_interval: int, tokens: int, notes: int
) -> dict[str, Any]:
    """The loss part of metrics.json: steps, tokens seen, train/val loss, perplexity, bits/note."""
    val_loss = result.val_loss
    finite = math.isfinite(val_loss)
    bits = bits_per_note(val_loss, tokens, notes)
    return {
        "steps": steps,
        "tokens_seen": result.tokens_seen,
        "train_loss": rounded(result.recent_train_loss(eval_interval)),
        "val_loss": rounded(val_loss) if finite else None,
        "val_perplexity": rounded(math.exp(val_loss)) if finite else None,
        "val_bits_per_note": rounded(bits) if bits is not None else None,
    }


def speed_metrics(
    result: TrainResult, device: str, peak_memory_mb: float, wall_s: float
) -> dict[str, Any]:
    """speed.json: wall-clock figures, kept apart so metrics.json stays byte-identical."""
    return {
        "device": device,
        "train_tokens_per_s": round(result.tokens_seen / max(result.train_seconds, 1e-9), 1),
        "peak_memory_mb": round(peak_memory_mb, 1),
        "wall_s": round(wall_s, 2),
    }


def train_log_csv(result: TrainResult) -> str:
    """step,train_loss,val_loss,lr per optimizer step; val_loss empty where not evaluated."""
    lines = ["step,train_loss,val_loss,lr"]
    for row in result.rows:
        val = "" if row.val_loss is None else f"{rounded(row.val_loss)}"
        lines.append(f"{row.step},{rounded(row.train_loss)},{val},{rounded(row.lr)}")
    return "\n".join(lines) + "\n"


def split_counts(stats: Mapping[str, Any], split: str) -> tuple[int, int]:
    """(tokens, notes) of a split in the tokenize stage's stats.json (bits per note)."""
    part = stats["per_split"][split]
    return int(part.get("tokens", 0)), int(part.get("notes", 0))


def rounded(value: float) -> float:
    return round(float(value), 6)
