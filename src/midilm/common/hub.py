"""The Hugging Face Hub as every loader sees it: whether it may be used, and whether a name is a
local folder rather than a hub id."""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "on", "yes", "true"}


def hub_offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set now (read at call time, unlike the hub's
    import-time constant), or huggingface_hub's own offline mode."""
    import huggingface_hub

    flags = (
        os.environ.get(k, "").strip().lower() for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    return any(f in _TRUE for f in flags) or bool(huggingface_hub.is_offline_mode())


def looks_like_path(name: str) -> bool:
    """A local folder rather than a hub id (`org/name`)."""
    return Path(name).expanduser().exists() or name.startswith(("/", "./", "../", "~"))
