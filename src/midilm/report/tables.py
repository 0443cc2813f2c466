"""A thesis table rendered as Markdown, CSV and LaTeX (booktabs), each ending with provenance.

Numbers are formatted once, with fixed decimals per column, so the three renderings agree and
identical inputs give identical bytes.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from midilm.common.io import write_text_atomic
from midilm.report.provenance import Provenance

LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "|": r"\textbar{}",
}


@dataclass(frozen=True)
class Column:
    """A column: its header and, for numbers, the decimals shown (None: integers / text)."""

    name: str
    decimals: int | None = None


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)
    provenance: Provenance | None = None

    def cells(self) -> list[list[str]]:
        """Every value formatted: blank for None/nan, fixed decimals for float columns."""
        out = []
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table {self.title!r}: row {row} has {len(row)} cells, "
                    f"expected {len(self.columns)} ({[c.name for c in self.columns]})"
                )
            out.append([format_cell(v, c.decimals) for v, c in zip(row, self.columns, strict=True)])
        return out

    def source(self) -> Provenance:
        return self.provenance or Provenance("no-git", "none", "none")

    def numeric(self) -> list[bool]:
        """Columns whose values are all numbers (right-aligned)."""
        return [
            all(_is_number(row[i]) or _is_blank(row[i]) for row in self.rows)
            and any(_is_number(row[i]) for row in self.rows)
            for i in range(len(self.columns))
        ]

    def to_markdown(self) -> str:
        align = ["---:" if n else ":---" for n in self.numeric()]
        lines = [f"**{_md(self.title)}**", ""]
        lines.append("| " + " | ".join(_md(c.name) for c in self.columns) + " |")
        lines.append("|" + "|".join(align) + "|")
        lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in self.cells()]
        lines.append("")
        if self.notes:
            lines += [f"Note: {_md(note)}" for note in self.notes]
            lines.append("")
        lines.append(self.source().line())
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([c.name for c in self.columns])
        writer.writerows(self.cells())
        buffer.write(f"# provenance: {self.source().text()}\n")
        return buffer.getvalue()

    def to_latex(self, label: str | None = None) -> str:
        spec = "".join("r" if n else "l" for n in self.numeric())
        provenance = self.source()
        caption = latex_escape(self.title)
        origin = latex_escape(provenance.line())
        lines = [
            r"\begin{table}[htbp]",
            r"\centering",
            rf"\caption[{caption}]{{{caption}. {{\footnotesize {origin}}}}}",
        ]
        if label:
            lines.append(rf"\label{{tab:{label}}}")
        lines += [
            rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule",
            " & ".join(latex_escape(c.name) for c in self.columns) + r" \\",
            r"\midrule",
        ]
        lines += [" & ".join(latex_escape(v) for v in row) + r" \\" for row in self.cells()]
        lines += [r"\bottomrule", r"\end{tabular}"]
        lines += [rf"\par\smallskip{{\footnotesize {latex_escape(note)}}}" for note in self.notes]
        lines += [r"\end{table}", f"% provenance: {provenance.text()}"]
        return "\n".join(lines) + "\n"

    def write(self, stem: str | Path) -> list[Path]:
        """Write `<stem>.md`, `<stem>.csv` and `<stem>.tex` atomically; returns the paths."""
        stem = Path(stem)
        outputs = {
            stem.with_suffix(".md"): self.to_markdown(),
            stem.with_suffix(".csv"): self.to_csv(),
            stem.with_suffix(".tex"): self.to_latex(label=stem.name),
        }
        for path, text in outputs.items():
            write_text_atomic(path, text)
        return list(outputs)


def format_cell(value: Any, decimals: int | None) -> str:
    """Deterministic text for one cell."""
    value = _plain(value)
    if _is_blank(value):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and decimals is not None:
        return f"{float(value):.{decimals}f}"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.3f}"
    return str(value)


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in text)


def _md(text: str) -> str:
    return text.replace("|", r"\|")


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars."""
    return value.item() if hasattr(value, "item") and not isinstance(value, str) else value


def _is_blank(value: Any) -> bool:
    value = _plain(value)
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _is_number(value: Any) -> bool:
    value = _plain(value)
    return isinstance(value, int | float) and not isinstance(value, bool) and not _is_blank(value)
