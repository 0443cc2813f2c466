"""Compose `conf/` into params.yaml exactly as DVC's Hydra integration does on `dvc exp run -S`."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from midilm.common.io import write_text_atomic

CONF_DIR = Path("conf")
CONFIG_NAME = "config"


def compose_params_text(conf_dir: Path = CONF_DIR, overrides: Sequence[str] = ()) -> str:
    """The YAML that DVC would write for these Hydra overrides (same composer, same dumper)."""
    from dvc.utils.hydra import compose_and_dump

    if not (conf_dir / f"{CONFIG_NAME}.yaml").exists():
        raise FileNotFoundError(f"{conf_dir}/{CONFIG_NAME}.yaml not found; run from the repo root")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        compose_and_dump(out, str(conf_dir.resolve()), None, CONFIG_NAME, "", list(overrides))
        return out.read_text(encoding="utf-8")


def compose_params(
    output: Path = Path("params.yaml"), conf_dir: Path = CONF_DIR, overrides: Sequence[str] = ()
) -> str:
    text = compose_params_text(conf_dir, overrides)
    write_text_atomic(output, text)
    return text
