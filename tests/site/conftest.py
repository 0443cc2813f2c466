"""Fixtures of the site tests: a rendered repository tree and a headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.site.browser import chromium  # noqa: F401  (fixture)
from tests.site.rendered_repo import make_rendered_repo


@pytest.fixture(scope="session")
def rendered_repo(
    tmp_path_factory: pytest.TempPathFactory, shared_datasets: Path, repo_root: Path
) -> Path:
    """gpt and mamba with samples, audio, metrics and loss logs; llama without audio; a lo-fi
    mix; the committed results tables (read-only for tests: copy before changing it)."""
    root = make_rendered_repo(
        tmp_path_factory.mktemp("site_repo"),
        shared_datasets,
        models=("gpt", "mamba", "llama"),
        quarters=8.0,
        audio_for=("gpt", "mamba"),
        tables_from=repo_root / "reports" / "tables",
    )
    add_listening_results(root, ["gpt", "mamba", "llama"])
    return root


@pytest.fixture(scope="session")
def built_site(rendered_repo: Path) -> Path:
    """The site of `rendered_repo`, built once (tests may rebuild it in place: same bytes)."""
    from midilm.report.site import build_site

    build_site(rendered_repo)
    return rendered_repo / "reports" / "site"


def add_listening_results(root: Path, models: list[str]) -> None:
    """Commit the SYNTHETIC ratings file and write T8 from it (labelled synthetic)."""
    from midilm.report.listening import listening_table
    from tests.listen.synthetic_ratings import synthetic_ratings_csv

    ratings = root / "reports" / "listening" / "ratings.csv"
    ratings.parent.mkdir(parents=True, exist_ok=True)
    ratings.write_text(synthetic_ratings_csv())
    listening_table(ratings, models).write(root / "reports" / "tables" / "T8_listening")
