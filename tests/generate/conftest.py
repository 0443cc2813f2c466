"""The tiny model trained on the chorale corpus (`tiny`, `fresh_layout`: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from midilm.common.paths import Layout


@pytest.fixture(scope="session")
def trained(tiny: Callable[..., dict[str, Any]], fresh_layout: Callable[[], Layout]) -> Layout:
    """A repo with the tiny model trained for a few steps (enough to emit notes)."""
    from midilm.train.stage import run_train

    layout = fresh_layout()
    run_train(tiny(steps=20), layout)
    return layout
