"""T2 inputs: the tokenizers of params, and the measured speed from its own output."""

from __future__ import annotations

from pathlib import Path

import pytest

from midilm.common.paths import Layout
from midilm.report.builders import tokenizers_speed_table


def test_speed_table_reads_the_speed_output_and_names_the_stage(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    stats = layout.tokens_dir("remi") / "stats.json"
    stats.parent.mkdir(parents=True)
    stats.write_text('{"tokenizer": "remi"}\n')  # stats.json holds no timing
    with pytest.raises(FileNotFoundError, match=r"tokenize-remi.json.*dvc repro tokenize@remi"):
        tokenizers_speed_table({"tokenizers": {"remi": {}}}, layout)
    speed = layout.speed_file("tokenize", "remi")
    speed.parent.mkdir(parents=True)
    speed.write_text('{"files": 10, "workers": 2, "encode_files_per_s": 123.4}\n')
    table = tokenizers_speed_table({"tokenizers": {"remi": {}}}, layout)
    assert table.rows == [["remi", 10, 2, 123.4]]
