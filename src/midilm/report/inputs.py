"""The report's inputs: a stage output the report reads, or an error naming the stage to run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from midilm.common.io import read_json


def need(path: Path, stage: str) -> Path:
    """`path`, or FileNotFoundError naming `dvc repro <stage>`, the stage that writes it."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing input of the report; run `dvc repro {stage}`.")
    return path


def read_input(path: Path, stage: str) -> dict[str, Any]:
    """The JSON at `path` (see `need`)."""
    return read_json(need(path, stage))
