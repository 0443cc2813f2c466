"""Experiment tracking on rank 0: wandb (offline by default) and dvclive (DVC metrics and plots).

Both are optional (`train.wandb.mode: disabled`, `train.dvclive: false`) and only observe: they
never touch the RNGs or the outputs, so weights and metrics.json are the same with or without them.
A tracker that fails is switched off with a warning instead of stopping training.

- wandb: run `name` = the model key, `dir` = models/<key> (runs land in models/<key>/wandb/),
  `config` = the params as a plain dict; the environment's WANDB_MODE overrides `mode`.
- dvclive: models/<key>/live/ (metrics.json and plots/metrics/**.tsv); it never writes dvc.yaml
  nor saves a DVC experiment (the stage declares the folder as an output instead). On resume the
  series are cut back to the resumed step, so no step appears twice.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from midilm.common.logging import get_logger
from midilm.specs import TrainSpec, WandbSpec

log = get_logger(__name__)

WANDB_MODES = ("offline", "online", "disabled")
LIVE_DIR, WANDB_DIR = "live", "wandb"
MEASURED_SUFFIXES = ("tokens_per_s",)  # wall-clock values: wandb only


class Tracker(Protocol):
    def log(self, step: int, values: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


class WandbTracker:
    def __init__(self, cfg: WandbSpec, out_dir: Path, name: str, config: Mapping[str, Any]) -> None:
        import wandb

        logging.getLogger("wandb").setLevel(logging.WARNING)
        out_dir.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(
            console="off",
            silent=True,
            disable_git=True,
            save_code=False,
            x_disable_stats=True,
            x_disable_machine_info=True,
        )
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            name=name,
            dir=str(out_dir),
            mode=wandb_mode(cfg),
            config=dict(config),
            settings=settings,
            reinit="create_new",
        )

    def log(self, step: int, values: Mapping[str, float]) -> None:
        self.run.log(dict(values), step=step)

    def close(self) -> None:
        self.run.finish()


class LiveTracker:
    def __init__(self, directory: Path, resume_step: int) -> None:
        from dvclive import Live

        if resume_step > 0:
            trim_live_series(directory, resume_step)
            _drop_broken_summary(directory / "metrics.json")
        self.live = Live(
            dir=str(directory),
            resume=resume_step > 0,
            report=None,
            save_dvc_exp=False,
            dvcyaml=False,
            monitor_system=False,
        )

    def log(self, step: int, values: Mapping[str, float]) -> None:
        """Every value but wall-clock ones (tokens/s): live/ is a DVC output, byte-identical
        across runs with the same seed."""
        self.live.step = step
        for name, value in values.items():
            if not name.endswith(MEASURED_SUFFIXES):
                self.live.log_metric(name, float(value))
        self.live.make_summary()

    def close(self) -> None:
        self.live.make_summary()  # not `end()`: that may `git add` inside `dvc exp run`


class Trackers:
    """Every enabled tracker; `log` and `close` go to each, and a failing one is dropped."""

    def __init__(self, trackers: list[Tracker] | None = None) -> None:
        self.trackers = list(trackers or [])

    def log(self, step: int, values: Mapping[str, float]) -> None:
        for tracker in list(self.trackers):
            self._guard(tracker, "log", lambda t=tracker: t.log(step, values))

    def close(self) -> None:
        for tracker in list(self.trackers):
            self._guard(tracker, "close", tracker.close)
        self.trackers = []

    def _guard(self, tracker: Tracker, what: str, call: Any) -> None:
        try:
            call()
        except Exception as exc:  # a logger must never stop training
            log.warning(
                "%s.%s failed (%s); tracking with it is off", type(tracker).__name__, what, exc
            )
            self.trackers.remove(tracker)


def wandb_mode(cfg: WandbSpec) -> str:
    """WANDB_MODE from the environment, else `train.wandb.mode`."""
    mode = (os.environ.get("WANDB_MODE") or cfg.mode).lower()
    mode = {"dryrun": "offline", "disable": "disabled"}.get(mode, mode)
    if mode not in WANDB_MODES:
        raise ValueError(f"train.wandb.mode={mode!r}; use one of {WANDB_MODES} (or WANDB_MODE)")
    return mode


def open_trackers(
    spec: TrainSpec,
    out_dir: Path,
    name: str,
    config: Mapping[str, Any],
    resume_step: int,
    enabled: bool = True,
) -> Trackers:
    """The trackers `spec` asks for (none when not `enabled`: ranks other than 0)."""
    if not enabled:
        return Trackers()
    trackers: list[Tracker] = []
    makers: list[tuple[str, Callable[[], Tracker]]] = []
    if wandb_mode(spec.wandb) != "disabled":
        makers.append(("wandb", lambda: WandbTracker(spec.wandb, out_dir, name, config)))
    if spec.dvclive:
        makers.append(("dvclive", lambda: LiveTracker(out_dir / LIVE_DIR, resume_step)))
    for label, make in makers:
        try:
            trackers.append(make())
        except Exception as exc:  # a logger must never stop training
            log.warning("%s could not start (%s); training without it", label, exc)
    return Trackers(trackers)


def trim_live_series(directory: Path, last_step: int) -> None:
    """Drop rows after `last_step` from dvclive's .tsv series (written before a crash)."""
    for path in sorted((directory / "plots").glob("**/*.tsv")):
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t"))
        if not rows or "step" not in rows[0]:
            continue
        header, column = rows[0], rows[0].index("step")
        kept = [header, *[r for r in rows[1:] if _row_step(r, header, column) <= last_step]]
        with open(path, "w", newline="") as handle:
            csv.writer(handle, delimiter="\t", lineterminator="\n").writerows(kept)


def _row_step(row: list[str], header: list[str], column: int) -> float:
    """The row's step; infinity for a row cut short by a kill (dropped by the caller)."""
    try:
        if len(row) == len(header) and all(row):
            return int(row[column])
    except ValueError:
        pass
    return float("inf")


def _drop_broken_summary(path: Path) -> None:
    """dvclive rewrites metrics.json in place; a kill mid-write leaves it unreadable."""
    try:
        if path.exists():
            json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        log.warning("%s: cut short by a kill; dvclive rebuilds it", path)
        path.unlink()
