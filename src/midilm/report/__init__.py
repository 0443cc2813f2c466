"""The thesis tables (Markdown, CSV, LaTeX booktabs), each with a provenance line."""

from midilm.report.builders import TABLES, table
from midilm.report.provenance import Provenance, collect_provenance
from midilm.report.tables import Column, Table

__all__ = ["TABLES", "Column", "Provenance", "Table", "collect_provenance", "table"]
