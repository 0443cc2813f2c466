"""T2 inputs: which tokenizers are listed, and where the measured speed comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from midilm.common.paths import Layout
from midilm.report.builders import tokenizer_names, tokenizers_speed_table


def test_tokenizer_names_need_no_training_tokenizer() -> None:
    tokenizers = {"remi": {"name": "remi"}, "midicompact": {"name": "midicompact"}}
    assert tokenizer_names({"tokenizers": tokenizers}) == ["remi", "midicompact"]
    assert tokenizer_names({"tokenizer": {"name": "tsd"}}) == ["tsd"]
    assert tokenizer_names({}) == []


def test_speed_table_reads_speed_json_and_names_the_stage(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    stats = layout.tokens_dir("remi") / "stats.json"
    stats.parent.mkdir(parents=True)
    stats.write_text('{"tokenizer": "remi"}\n')  # stats.json holds no timing any more
    with pytest.raises(FileNotFoundError, match=r"remi/speed.json.*dvc repro tokenize@remi"):
        tokenizers_speed_table({"tokenizers": {"remi": {}}}, layout)
