"""Table rendering: exact Markdown, CSV and LaTeX for a small table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from midilm.report.provenance import Provenance, git_commit
from midilm.report.tables import Column, Table, format_cell, latex_escape

PROVENANCE = Provenance("abc123", "0123456789abcdef", "fedcba9876543210")


def small_table() -> Table:
    return Table(
        "Loss & accuracy_1",
        [Column("model_name"), Column("steps"), Column("loss", 3)],
        [["gpt_small", np.int64(500), 1.23456], ["rwkv 50%", 1000, None]],
        notes=["Lower is better; #1 wins."],
        provenance=PROVENANCE,
    )


def test_markdown() -> None:
    assert small_table().to_markdown() == (
        "**Loss & accuracy_1**\n"
        "\n"
        "| model_name | steps | loss |\n"
        "|:---|---:|---:|\n"
        "| gpt_small | 500 | 1.235 |\n"
        "| rwkv 50% | 1000 |  |\n"
        "\n"
        "Note: Lower is better; #1 wins.\n"
        "\n"
        "Provenance: git abc123, params 0123456789ab, data fedcba987654\n"
    )


def test_csv() -> None:
    assert small_table().to_csv() == (
        "model_name,steps,loss\n"
        "gpt_small,500,1.235\n"
        "rwkv 50%,1000,\n"
        "# provenance: git abc123, params 0123456789ab, data fedcba987654\n"
    )


def test_latex_uses_booktabs_and_escapes() -> None:
    assert small_table().to_latex(label="T9_demo") == (
        "\\begin{table}[htbp]\n"
        "\\centering\n"
        "\\caption[Loss \\& accuracy\\_1]{Loss \\& accuracy\\_1. {\\footnotesize "
        "Provenance: git abc123, params 0123456789ab, data fedcba987654}}\n"
        "\\label{tab:T9_demo}\n"
        "\\begin{tabular}{lrr}\n"
        "\\toprule\n"
        "model\\_name & steps & loss \\\\\n"
        "\\midrule\n"
        "gpt\\_small & 500 & 1.235 \\\\\n"
        "rwkv 50\\% & 1000 &  \\\\\n"
        "\\bottomrule\n"
        "\\end{tabular}\n"
        "\\par\\smallskip{\\footnotesize Lower is better; \\#1 wins.}\n"
        "\\end{table}\n"
        "% provenance: git abc123, params 0123456789ab, data fedcba987654\n"
    )


def test_cells_are_formatted_deterministically() -> None:
    assert format_cell(0.5, 2) == "0.50"
    assert format_cell(np.float32(0.125), 3) == "0.125"
    assert format_cell(float("nan"), 2) == ""
    assert format_cell(7, None) == "7"
    assert latex_escape("a_b%c&d#e$f{g}h~i^j\\k") == (
        "a\\_b\\%c\\&d\\#e\\$f\\{g\\}h\\textasciitilde{}i\\textasciicircum{}j\\textbackslash{}k"
    )


def test_write_creates_three_files(tmp_path: Path) -> None:
    paths = small_table().write(tmp_path / "T9_demo")
    assert [p.name for p in paths] == ["T9_demo.md", "T9_demo.csv", "T9_demo.tex"]
    assert all(
        p.read_text()
        .rstrip("\n")
        .splitlines()[-1]
        .lower()
        .lstrip("#% ")
        .startswith("provenance: git abc123")
        for p in paths
    )


def test_git_commit(repo_root: Path, tmp_path: Path) -> None:
    commit = git_commit(repo_root)
    assert commit == "no-git" or len(commit) == 40
    assert git_commit(tmp_path) == "no-git"
