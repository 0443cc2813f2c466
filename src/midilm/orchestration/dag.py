"""The DVC DAG as plain data: stage name -> upstream stage names, read with DVC's own API.

Names are DVC's addressing (`train`, `tokenize@remi` for a `foreach` item), exactly what
`dvc repro -s <name>` accepts. Flows use this to submit one task per stage after its upstreams.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

Dag = dict[str, list[str]]


def read_dag(repo_root: str | Path = ".") -> Dag:
    """Every pipeline stage of `dvc.yaml` (foreach items expanded), in topological order, mapped
    to its direct upstream stages (the stages writing an output it depends on), also in order."""
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    with Repo(str(repo_root)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        stages = [stage for stage in graph.nodes if isinstance(stage, PipelineStage)]
        upstream = {
            _address(stage, repo.root_dir): {
                _address(dep, repo.root_dir)
                for dep in graph.successors(stage)
                if isinstance(dep, PipelineStage)
            }
            for stage in stages
        }
    order = topological_order(upstream)
    rank = {name: i for i, name in enumerate(order)}
    return {name: sorted(upstream[name], key=rank.__getitem__) for name in order}


def _address(stage: Any, root: str) -> str:
    """What `dvc repro -s` takes from the repo root: `name`, or `sub/dvc.yaml:name` elsewhere
    (DVC's own `addressing` is relative to the current directory, not the repo)."""
    dvcfile = os.path.relpath(stage.dvcfile.path, root)
    return stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"


def topological_order(dag: Mapping[str, Iterable[str]]) -> list[str]:
    """Stages so that each comes after its upstreams; ties keep the mapping's order (dvc.yaml)."""
    return [name for layer in topological_layers(dag) for name in layer]


def topological_layers(dag: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Stages grouped by depth: layer k holds the stages whose upstreams all lie in layers < k,
    so the stages of one layer are independent of each other and can run at the same time."""
    pending = {name: set(ups) for name, ups in dag.items()}
    missing = {up for ups in pending.values() for up in ups} - set(pending)
    if missing:
        raise ValueError(f"DAG names upstream stages that are not in it: {sorted(missing)}")
    layers: list[list[str]] = []
    done: set[str] = set()
    while pending:
        layer = [name for name, ups in pending.items() if ups <= done]
        if not layer:
            raise ValueError(f"DAG has a cycle among stages {sorted(pending)}")
        layers.append(layer)
        done.update(layer)
        for name in layer:
            del pending[name]
    return layers


def ancestors(dag: Mapping[str, Iterable[str]], name: str) -> set[str]:
    """Every stage `name` depends on, directly or through other stages."""
    seen: set[str] = set()
    todo = list(dag[name])
    while todo:
        up = todo.pop()
        if up not in seen:
            seen.add(up)
            todo.extend(dag[up])
    return seen


def select_stages(dag: Dag, names: Iterable[str] | None) -> Dag:
    """The sub-DAG of the named stages only (nothing upstream is added), in DAG order.

    A `foreach` stage's base name selects all its items (`tokenize` -> `tokenize@remi`, ...).
    Two selected stages keep an edge when one depends on the other, even through stages left out,
    so they still run in DAG order. Unknown names raise a ValueError listing the stage names.
    """
    if names is None:
        return {name: list(ups) for name, ups in dag.items()}
    wanted: set[str] = set()
    for requested in names:
        matches = [n for n in dag if n == requested or n.split("@", 1)[0] == requested]
        if not matches:
            raise ValueError(f"unknown stage {requested!r}; the DAG's stages are {', '.join(dag)}")
        wanted.update(matches)
    return {
        name: [up for up in dag if up in wanted and up in ancestors(dag, name)]
        for name in dag
        if name in wanted
    }
