"""Typed specs: missing and unknown keys fail with the conf file named; values are coerced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from midilm.common.spec import ConfigError, from_mapping, section


@dataclass(frozen=True)
class Inner:
    a: int


@dataclass(frozen=True)
class Example:
    steps: int
    lr: float
    mode: Literal["single", "ddp"]
    betas: tuple[float, float]
    top_k: int | None
    inner: Inner
    optional: str = "x"


GOOD = {
    "steps": 10,
    "lr": "1e-3",
    "mode": "ddp",
    "betas": [0.9, 0.99],
    "top_k": None,
    "inner": {"a": 2.0},
}


def test_builds_and_coerces() -> None:
    spec = from_mapping(Example, GOOD, "conf/x.yaml")
    assert spec == Example(10, 1e-3, "ddp", (0.9, 0.99), None, Inner(2))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"typo": 1}, "unknown key"),
        ({"steps": 1.5}, "`steps`"),
        ({"mode": "fsdp"}, "not one of"),
        ({"betas": [0.9]}, "expected 2 values"),
        ({"lr": True}, "`lr`"),
    ],
)
def test_bad_values_name_the_file(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        from_mapping(Example, {**GOOD, **change}, "conf/x.yaml")
    assert "conf/x.yaml" in str(info.value)


def test_missing_key_is_an_error() -> None:
    cfg = {k: v for k, v in GOOD.items() if k != "steps"}
    with pytest.raises(ConfigError, match=r"missing key\(s\) \['steps'\]"):
        from_mapping(Example, cfg, "conf/x.yaml")


def test_section_names_the_conf_group() -> None:
    with pytest.raises(ConfigError, match="conf/train"):
        section({"x": {}}, "train", where="conf/train")
    assert section({"a": {"b": {"c": 1}}}, "a", "b") == {"c": 1}
