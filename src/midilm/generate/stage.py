"""Stage `generate@KEY`: continue prompts (by default the first tokens of test pieces) with model
KEY through the one sampling loop; write outputs/samples/KEY/sample_NNN.mid and samples.json."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from midilm.common.paths import Layout
from midilm.generate.session import sample_set


def run_generate(
    params: Mapping[str, Any],
    layout: Layout,
    key: str | None = None,
    out_dir: Path | None = None,
    **overrides: Any,
) -> dict:
    """Sample from model `key`; returns samples.json's content. `overrides` replace fields of the
    model's generate spec (the CLI's options); `out_dir` defaults to outputs/samples/KEY."""
    return sample_set(params, layout, key, out_dir, **overrides)
