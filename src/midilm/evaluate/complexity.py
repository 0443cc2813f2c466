"""The complexity stage: seed 001's complexity table, measured (T7).

Decoding time per token and the memory the cache or recurrent state holds, against context
length, for the families named in params `complexity.families` at their configured sizes.
Timing needs no trained weights, so the models are randomly initialised (seeded).
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig

from midilm.common.io import write_json_atomic
from midilm.common.logging import get_logger
from midilm.common.params import to_plain
from midilm.common.paths import Layout
from midilm.models.complexity import measure_complexity
from midilm.models.runtime import deterministic, resolve_device

log = get_logger(__name__)


def run_complexity(params: Mapping[str, Any] | DictConfig, layout: Layout | None = None) -> dict:
    """Measure every (family, context) point; write outputs/complexity/complexity.json."""
    layout = layout or Layout()
    plain = to_plain(params) if isinstance(params, DictConfig) else dict(params)
    cfg, models = plain["complexity"], plain["models"]
    missing = [key for key in cfg["families"] if key not in models]
    if missing:
        raise KeyError(
            f"complexity.families names {missing}, which are not in params `models` "
            f"({sorted(models)}); fix conf/complexity/*.yaml"
        )
    entries = {key: {**models[key], "name": key} for key in cfg["families"]}
    device = resolve_device(str(cfg.get("device", "cpu")))
    with deterministic(int(plain["seed"]), int(cfg.get("threads", 1))):
        rows = measure_complexity(
            entries,
            [int(c) for c in cfg["contexts"]],
            int(cfg["vocab_size"]),
            device,
            int(cfg["repeats"]),
        )
    result = {
        "device": _device_name(device),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "threads": int(cfg.get("threads", 1)),
        "rows": rows,
    }
    write_json_atomic(layout.complexity_file, result)
    log.info("complexity: %d points on %s", len(rows), result["device"])
    return result


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"
