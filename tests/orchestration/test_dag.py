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
def params(repo_root: Path) -> dict:
    return yaml.safe_load((repo_root / "params.yaml").read_text())


@pytest.fixture(scope="module")
def tokenize_stages(params: dict) -> list[str]:
    return [f"tokenize@{key}" for key in params["tokenizers"]]


def _each(stage: str, keys) -> list[str]:
    return [f"{stage}@{key}" for key in keys]


def test_every_stage_is_there_with_foreach_items_expanded(dag, tokenize_stages, params) -> None:
    models = list(params["models"])
    expected = {
        "datasets",
        "split",
        "augment",
        *tokenize_stages,
        *_each("pack", params["tokenizers"]),
        *_each("train", models),
        *_each("generate", models),
        *_each("evaluate", models),
        *_each("render", models),
        "reference",
        "lofi",
        "seqgan_oracle",
        "seqgan_music",
        "evaluate_seqgan",
        "render_seqgan",
        "complexity",
        "report",
        "site",
    }
    assert set(dag) == expected and len(dag) == len(expected)
    order = list(dag)
    assert order.index("datasets") < order.index("split") < order.index("augment")
    assert order.index("train@gpt") < order.index("generate@gpt") < order.index("evaluate@gpt")
    assert order[-2:] == ["report", "site"]


def test_edges_follow_the_data(dag, tokenize_stages, params) -> None:
    assert dag["datasets"] == []
    assert dag["split"] == ["datasets"]
    assert "split" in dag["augment"]
    for stage in tokenize_stages:
        assert "augment" in dag[stage]
    for key in params["tokenizers"]:
        assert dag[f"pack@{key}"] == [f"tokenize@{key}"]
    for key, entry in params["models"].items():
        assert f"pack@{entry['tokenizer']}" in dag[f"train@{key}"]
        assert f"train@{key}" in dag[f"generate@{key}"]
        assert f"generate@{key}" in dag[f"evaluate@{key}"]
        assert {f"evaluate@{key}", f"train@{key}"} <= set(dag["report"])
    assert dag["complexity"] == [] and dag["seqgan_oracle"] == []
    assert {"complexity", *tokenize_stages} <= set(dag["report"])
    assert {"seqgan_oracle", "seqgan_music"} <= set(dag["report"])
    assert set(dag["seqgan_music"]) == {
        "split",
        "datasets",
    }
    assert set(dag["evaluate_seqgan"]) == {"seqgan_music", "reference"}
    assert {"report", "render_seqgan", *_each("render", params["models"])} <= set(dag["site"])


def test_layers_put_the_tokenizers_side_by_side(dag, tokenize_stages) -> None:
    layers = topological_layers(dag)
    assert sorted(layers[0]) == ["complexity", "datasets", "seqgan_oracle"]
    assert layers[1][0] == "split" and layers[2][0] == "augment"
    assert layers[3][: len(tokenize_stages)] == tokenize_stages
    assert layers[-2:] == [["report"], ["site"]]


def test_layers_reject_cycles_and_dangling_edges() -> None:
    with pytest.raises(ValueError, match="cycle"):
        topological_layers({"a": ["b"], "b": ["a"]})
    with pytest.raises(ValueError, match="not in it"):
        topological_layers({"a": ["ghost"]})


def test_selecting_stages_keeps_only_those_in_dag_order(dag, tokenize_stages) -> None:
    picked = select_stages(dag, ["report", "train@gpt"])
    assert list(picked) == ["train@gpt", "report"]
    assert picked["report"] == ["train@gpt"]
    assert picked["train@gpt"] == []
    assert list(select_stages(dag, ["tokenize"])) == tokenize_stages
    with pytest.raises(ValueError, match="unknown stage 'trian'"):
        select_stages(dag, ["trian"])


def test_names_do_not_depend_on_the_current_directory(
    dag, repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert read_dag(repo_root) == dag
