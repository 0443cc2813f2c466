"""Stage `complexity`: seed 001's complexity table, measured (T7).

Decoding time per token and the memory the cache or recurrent state holds, against context
length, for the families named in params `complexity.families` at their configured sizes.
Timing needs no trained weights, so the models are randomly initialised (seeded).
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

import torch

from midilm.common.io import write_json_atomic
from midilm.common.logging import get_logger
from midilm.common.paths import Layout
from midilm.common.spec import ConfigError
from midilm.models.complexity import measure_complexity
from midilm.models.runtime import deterministic, resolve_device
from midilm.specs import model_keys, model_spec
from midilm.specs.evaluate import complexity_spec

log = get_logger(__name__)


def run_complexity(params: Mapping[str, Any], layout: Layout) -> dict:
    """Measure every (model, context) point; write outputs/complexity/complexity.json."""
    cfg = complexity_spec(params)
    missing = [key for key in cfg.families if key not in model_keys(params)]
    if missing:
        raise ConfigError(
            f"complexity.families names {missing}, which are not in params `models` "
            f"({model_keys(params)}); fix conf/complexity/*.yaml"
        )
    specs = {key: model_spec(params, key) for key in cfg.families}
    architectures = {key: {**s.architecture, "size": s.size} for key, s in specs.items()}
    device = resolve_device(cfg.device)
    with deterministic(int(params["seed"]), cfg.threads):
        rows = measure_complexity(architectures, cfg.contexts, cfg.vocab_size, device, cfg.repeats)
    result = {
        "device": _device_name(device),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "threads": cfg.threads,
        "rows": rows,
    }
    write_json_atomic(layout.complexity_file, result)
    log.info("complexity: %d points on %s", len(rows), result["device"])
    return result


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"
