"""One logger setup for stages and the CLI: rich handler, level from MIDILM_LOG_LEVEL."""

from __future__ import annotations

import logging
import os

from rich.logging import RichHandler

_CONFIGURED = False


def get_logger(name: str) -> logging.Logger:
    global _CONFIGURED
    if not _CONFIGURED:
        logging.basicConfig(
            level=os.environ.get("MIDILM_LOG_LEVEL", "INFO"),
            format="%(message)s",
            datefmt="[%X]",
            handlers=[RichHandler(show_path=False, rich_tracebacks=False)],
        )
        _CONFIGURED = True
    return logging.getLogger(name)


def progress_disabled() -> bool:
    """Progress bars are off when MIDILM_NO_PROGRESS is set (CI logs stay short)."""
    return bool(os.environ.get("MIDILM_NO_PROGRESS"))
