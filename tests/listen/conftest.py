"""Fixtures of the listening-test tests: rendered audio of two "models" and real pieces, a spec
with short clips, a planned test folder."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from midilm.listen.plan import create_test
from midilm.listen.testdir import ListeningTest
from midilm.specs.listen import ListenSpec
from tests.site.browser import chromium  # noqa: F401  (fixture)
from tests.site.rendered_repo import make_rendered_repo

MODELS = ("gpt", "mamba")


@pytest.fixture(scope="session")
def listen_repo(tmp_path_factory: pytest.TempPathFactory, shared_datasets: Path) -> Path:
    """Two samples of gpt and of mamba and the three real pieces they continued, rendered."""
    return make_rendered_repo(
        tmp_path_factory.mktemp("listen_repo"), shared_datasets, models=MODELS, lofi=False
    )


def short_spec(**changes: object) -> ListenSpec:
    """One clip of each condition per participant, clips of 1.5 s (the browser plays them)."""
    spec = ListenSpec(
        seed=11,
        samples_per_model=1,
        real_per_participant=1,
        anchors=1,
        anchors_per_participant=1,
        clip_seconds=1.5,
        anchor_segment_seconds=0.25,
        anchor_lowpass_hz=3500.0,
        anchor_snr_db=10.0,
    )
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def planned_master(
    listen_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, ListeningTest]:
    folder = tmp_path_factory.mktemp("planned") / "test"
    return folder, create_test(
        listen_repo, folder, MODELS, 3, short_spec(), secret="fixture-secret"
    )


@pytest.fixture
def planned(
    planned_master: tuple[Path, ListeningTest], tmp_path: Path
) -> tuple[Path, ListeningTest]:
    """A fresh copy of a test planned for 3 participants (4 clips each), no ratings yet."""
    folder, test = planned_master
    copy = tmp_path / "test"
    shutil.copytree(folder, copy)
    return copy, test
