"""Stage `site`: the static results site of params' models in reports/site/."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from midilm.common.paths import Layout
from midilm.report.provenance import collect_provenance
from midilm.report.site.build import build_site
from midilm.specs import sample_set_keys


def run_site(params: Mapping[str, Any], layout: Layout) -> list[Path]:
    """The site of params' models (params order) and SeqGAN's melodies, with the report's
    provenance line."""
    return build_site(
        layout.root,
        layout.site_dir,
        models=sample_set_keys(params),
        provenance=collect_provenance(dict(params), layout),
    )
