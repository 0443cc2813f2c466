"""Datasets tests: fixtures over tests/datasets/params.py."""

from __future__ import annotations

import pytest

from tests.datasets.params import make_params, make_spec


@pytest.fixture
def params_factory():
    return make_params


@pytest.fixture
def filters():
    """The default bounds of conf/dataset/base.yaml."""
    return make_spec().filters
