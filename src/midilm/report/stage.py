"""Stage `report`: every registered table to reports/tables/<name>.{md,csv,tex}."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from midilm.common.logging import get_logger
from midilm.common.paths import Layout
from midilm.report.builders import TABLES
from midilm.report.provenance import collect_provenance

log = get_logger(__name__)


def run_report(params: Mapping[str, Any], layout: Layout) -> list[Path]:
    """Build and write every table in `TABLES`; returns the files written."""
    plain = dict(params)
    provenance = collect_provenance(plain, layout)
    written: list[Path] = []
    for name, build in TABLES.items():
        table = build(plain, layout)
        table.provenance = provenance
        written += table.write(layout.tables_dir / name)
    log.info("report: %d tables in %s (%s)", len(TABLES), layout.tables_dir, provenance.text())
    return written
