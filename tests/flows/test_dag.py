"""The DAG reader on the real dvc.yaml: stage names as DVC addresses them, edges, layers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from midilm.orchestration.dag import read_dag, select_stages, topological_layers


@pytest.fixture(scope="module")
def dag(repo_root: Path) -> dict[str, list[str]]:
    return read_dag(repo_root)


@pytest.fixture(scope="module")
def tokenize_stages(repo_root: Path) -> list[str]:
    tokenizers = yaml.safe_load((repo_root / "params.yaml").read_text())["tokenizers"]
    return [f"tokenize@{key}" for key in tokenizers]


def test_every_stage_is_there_with_foreach_items_expanded(dag, tokenize_stages) -> None:
    assert list(dag) == [
        "datasets",
        "split",
        "augment",
        *tokenize_stages,
        "pack",
        "train",
        "generate",
        "evaluate",
        "report",
    ]


def test_edges_follow_the_data(dag, tokenize_stages, repo_root: Path) -> None:
    train_tokenizer = yaml.safe_load((repo_root / "params.yaml").read_text())["tokenizer"]["name"]
    assert dag["datasets"] == []
    assert dag["split"] == ["datasets"]
    assert "split" in dag["augment"]
    for stage in tokenize_stages:
        assert "augment" in dag[stage]
    assert dag["pack"] == [f"tokenize@{train_tokenizer}"]
    assert "pack" in dag["train"]
    assert "train" in dag["generate"]
    assert "generate" in dag["evaluate"]
    assert {"evaluate", "train", *tokenize_stages} <= set(dag["report"])


def test_layers_put_the_tokenizers_side_by_side(dag, tokenize_stages) -> None:
    layers = topological_layers(dag)
    assert layers[:3] == [["datasets"], ["split"], ["augment"]]
    assert layers[3] == tokenize_stages
    assert layers[-1] == ["report"]


def test_layers_reject_cycles_and_dangling_edges() -> None:
    with pytest.raises(ValueError, match="cycle"):
        topological_layers({"a": ["b"], "b": ["a"]})
    with pytest.raises(ValueError, match="not in it"):
        topological_layers({"a": ["ghost"]})


def test_selecting_stages_keeps_only_those_in_dag_order(dag, tokenize_stages) -> None:
    picked = select_stages(dag, ["report", "train"])
    assert list(picked) == ["train", "report"]
    assert picked["report"] == ["train"]  # report depends on train through evaluate
    assert picked["train"] == []
    assert list(select_stages(dag, ["tokenize"])) == tokenize_stages
    with pytest.raises(ValueError, match="unknown stage 'trian'"):
        select_stages(dag, ["trian"])


def test_names_do_not_depend_on_the_current_directory(
    dag, repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert read_dag(repo_root) == dag
