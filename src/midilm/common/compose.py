"""Compose `conf/` into params.yaml exactly as DVC's Hydra integration does on `dvc exp run -S`,
and find which composition a given params.yaml is (`midilm params check`)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from midilm.common.io import write_text_atomic

CONF_DIR = Path("conf")
CONFIG_NAME = "config"


def compose_params_text(conf_dir: Path = CONF_DIR, overrides: Sequence[str] = ()) -> str:
    """The YAML that DVC would write for these Hydra overrides (same composer, same dumper)."""
    from dvc.utils.hydra import compose_and_dump

    _need_config(conf_dir)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        compose_and_dump(out, str(conf_dir.resolve()), None, CONFIG_NAME, "", list(overrides))
        return out.read_text(encoding="utf-8")


def compose_params(
    output: Path = Path("params.yaml"), conf_dir: Path = CONF_DIR, overrides: Sequence[str] = ()
) -> str:
    text = compose_params_text(conf_dir, overrides)
    write_text_atomic(output, text)
    return text


def _need_config(conf_dir: Path) -> None:
    if not (conf_dir / f"{CONFIG_NAME}.yaml").exists():
        raise FileNotFoundError(f"{conf_dir}/{CONFIG_NAME}.yaml not found; run from the repo root")


# ---------------------------------------------------------------- which composition is it?


@dataclass(frozen=True)
class Match:
    """The composition closest to a params file: its overrides, and the leaf keys where the
    file differs from it (`key: (in the file, composed)`; empty when it is that composition)."""

    overrides: tuple[str, ...]
    differences: dict[str, tuple[Any, Any]]

    @property
    def exact(self) -> bool:
        return not self.differences


def config_groups(conf_dir: Path = CONF_DIR) -> dict[str, tuple[str, list[str]]]:
    """{group: (default option, every option)} for each `group: option` entry of the root
    config's defaults list."""
    _need_config(conf_dir)
    root = yaml.safe_load((conf_dir / f"{CONFIG_NAME}.yaml").read_text(encoding="utf-8"))
    groups = {}
    for item in root.get("defaults") or []:
        if isinstance(item, Mapping) and len(item) == 1:
            ((group, default),) = item.items()
            if isinstance(default, str) and (conf_dir / group).is_dir():
                options = sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))
                groups[str(group)] = (default, options)
    return groups


def closest_composition(
    params: Mapping[str, Any], conf_dir: Path = CONF_DIR, overrides: Sequence[str] | None = None
) -> Match:
    """The group choices (`group=option` overrides) whose composition equals `params`, or the
    closest one found. The file names most choices itself (`dataset.name`, `tokenizer.name`,
    `profile`, ...); when that composition differs, each other option of the groups whose
    section differs (and of `profile`) is tried, keeping a change that lowers the number of
    differing keys. With `overrides` given, only that composition is compared."""
    wanted = _leaves(params)
    with _composer(conf_dir) as compose:

        def differences(choice: Mapping[str, str]) -> dict[str, tuple[Any, Any]]:
            got = _leaves(compose([f"{g}={o}" for g, o in sorted(choice.items())]))
            keys = sorted(set(wanted) | set(got))
            return {
                k: (wanted.get(k, "<absent>"), got.get(k, "<absent>"))
                for k in keys
                if wanted.get(k) != got.get(k)
            }

        if overrides is not None:
            choice = dict(o.split("=", 1) for o in overrides)
            return Match(tuple(overrides), differences(choice))
        groups = config_groups(conf_dir)
        choice = _named_choice(params, groups)
        best = differences(choice)
        tried: set[tuple[str, str]] = set()
        while best:
            sections = {key.split(".", 1)[0] for key in best}
            candidates = [
                (group, option)
                for group, (default, options) in groups.items()
                if group in sections or group == "profile"
                for option in options
                if option != choice.get(group, default) and (group, option) not in tried
            ]
            improved = False
            for group, option in candidates:
                tried.add((group, option))
                trial = {**choice, group: option}
                if option == groups[group][0]:
                    trial.pop(group)
                found = differences(trial)
                if len(found) < len(best):
                    choice, best, improved = trial, found, True
                    break
            if not improved:
                break
        return Match(tuple(f"{g}={o}" for g, o in sorted(choice.items())), best)


def _named_choice(
    params: Mapping[str, Any], groups: Mapping[str, tuple[str, list[str]]]
) -> dict[str, str]:
    """The non-default options the params name themselves: `<group>.name` (dataset, tokenizer,
    augment, ...) or a top-level string (`profile: smoke`)."""
    choice = {}
    for group, (default, options) in groups.items():
        node = params.get(group)
        named = node.get("name") if isinstance(node, Mapping) else node
        if isinstance(named, str) and named in options and named != default:
            choice[group] = named
    return choice


@contextmanager
def _composer(conf_dir: Path) -> Iterator[Any]:
    """A function overrides -> composed, resolved plain dict, within one Hydra session (as
    DVC composes, without its dump to text)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    _need_config(conf_dir)
    with initialize_config_dir(str(conf_dir.resolve()), version_base=None):

        def run(overrides: list[str]) -> dict[str, Any]:
            cfg = compose(config_name=CONFIG_NAME, overrides=overrides)
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]

        yield run


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted key: value} of every leaf; lists are leaves."""
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): node}
