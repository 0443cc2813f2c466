"""params.yaml is the Hydra composition of conf/, and every config group composes."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from midilm.common.compose import compose_params_text
from midilm.common.spec import ConfigError
from midilm.specs import resolve_all

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_committed_params_equal_the_composition_of_conf(repo_root: Path) -> None:
    committed = (repo_root / "params.yaml").read_text(encoding="utf-8")
    assert committed == compose_params_text(CONF), (
        "params.yaml is stale: run `midilm params compose` and commit it"
    )


@pytest.mark.parametrize("group", sorted(p.name for p in CONF.iterdir() if p.is_dir()))
def test_every_option_of_every_group_composes_and_builds_every_spec(group: str) -> None:
    for option in sorted((CONF / group).glob("*.yaml")):
        override = f"{group}={option.stem}"
        if group == "model":  # model entries live under `models` (conf/models/*.yaml)
            override = f"+model@models.{option.stem}_extra={option.stem}"
        if group == "tokenizer":  # tokenizer entries live under `tokenizers`
            override = f"+tokenizer@tokenizers.{option.stem}_extra={option.stem}"
        params = OmegaConf.to_container(
            OmegaConf.create(compose_params_text(CONF, [override])), resolve=True
        )
        assert len(resolve_all(params)) > 10, override  # every spec builds


def test_a_broken_group_fails_with_its_conf_file() -> None:
    params = OmegaConf.to_container(OmegaConf.create(compose_params_text(CONF)), resolve=True)
    params["train"]["stpes"] = params["train"].pop("steps")
    with pytest.raises(ConfigError, match=r"conf/train/default.yaml.*unknown key.*'stpes'"):
        resolve_all(params)


def test_smoke_profile_shrinks_the_run() -> None:
    default = OmegaConf.create(compose_params_text(CONF))
    smoke = OmegaConf.create(compose_params_text(CONF, ["profile=smoke"]))
    assert smoke.profile == "smoke" and default.profile == "default"
    assert smoke.train.steps < default.train.steps
    assert smoke.dataset.max_pieces_per_source == 30
    groove = OmegaConf.create(compose_params_text(CONF, ["dataset=groove", "profile=smoke"]))
    assert set(groove.dataset.sources) == {"groove"}  # the cap names no source
    assert groove.dataset.max_pieces_per_source == 30
    assert list(smoke.models) == list(default.models)  # same outputs, smaller runs


def test_dvc_hydra_integration_is_enabled(repo_root: Path) -> None:
    config = (repo_root / ".dvc" / "config").read_text()
    assert "[hydra]" in config and "enabled = true" in config
