"""The `midilm` command: one sub-command per DVC stage, plus dataset listing and params tools.

Stage commands run the same library function as `dvc repro -s <stage>` (without DVC's caching);
use them to debug one stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from midilm.common import wandb_sync
from midilm.orchestration.stages import STAGES, run_stage

app = typer.Typer(
    help="midilm: reproducible data + training pipeline for symbolic-music language models.",
    no_args_is_help=True,
    add_completion=False,
)
datasets_app = typer.Typer(
    help="Stage `datasets`: build the selected datasets, or list them.", no_args_is_help=True
)
params_app = typer.Typer(
    help="Compose and check params.yaml from conf/ (Hydra).", no_args_is_help=True
)
app.add_typer(datasets_app, name="datasets")
app.add_typer(params_app, name="params")
app.add_typer(wandb_sync.app, name="wandb")
console = Console()

ParamsOption = Annotated[Path, typer.Option("--params", help="Params file to read.")]
RootOption = Annotated[Path, typer.Option("--root", help="Repository root (outputs go under it).")]

STAGE_HELP = {
    "split": "Stage `split`: assign train/valid/test by content hash.",
    "augment": "Stage `augment`: augment the train split (transposition, velocity jitter).",
    "tokenize": "Stage `tokenize@KEY`: encode every piece with tokenizer KEY of params.",
    "pack": "Stage `pack@KEY`: pack tokenizer KEY's sequences into Arrow, binidx and JSONL.",
    "train": "Stage `train@KEY`: train model KEY of params `models` on its packed data.",
    "generate": "Stage `generate@KEY`: sample pieces from trained model KEY to MIDI.",
    "evaluate": "Stage `evaluate@KEY`: score model KEY's samples and the test split (seed 001).",
    "complexity": "Stage `complexity`: decoding time and cache memory against context (T7).",
    "report": "Stage `report`: write the thesis tables to reports/tables.",
}


KeyArgument = Annotated[
    str | None, typer.Argument(help="Item of a foreach stage (a tokenizer or model key).")
]


def _stage_command(name: str) -> None:
    def command(
        key: KeyArgument = None,
        params: ParamsOption = Path("params.yaml"),
        root: RootOption = Path("."),
    ) -> None:
        run_stage(name, params, root, key=key)

    command.__doc__ = STAGE_HELP[name]
    app.command(name=name)(command)


for _name in STAGES:
    if _name != "datasets":
        _stage_command(_name)


@datasets_app.command("build")
def datasets_build(
    params: ParamsOption = Path("params.yaml"), root: RootOption = Path(".")
) -> None:
    """Materialize the selected datasets as MIDI + manifest (the `datasets` stage)."""
    run_stage("datasets", params, root)


@datasets_app.command("list")
def datasets_list(params: ParamsOption = Path("params.yaml")) -> None:
    """List every dataset source with its status and license."""
    from midilm.common.params import load_params
    from midilm.datasets.registry import list_sources

    table = Table("name", "kind", "status", "license", title="midilm datasets")
    for entry in list_sources(load_params(params)):
        table.add_row(*(str(entry.get(k, "")) for k in ("name", "kind", "status", "license")))
    console.print(table)


@params_app.command("compose")
def params_compose(
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Hydra overrides, e.g. profile=smoke")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("params.yaml"),
) -> None:
    """Recompose params.yaml from conf/ (what `dvc exp run -S` does)."""
    from midilm.common.compose import compose_params

    compose_params(output, overrides=overrides or [])
    console.print(f"wrote {output}")


@params_app.command("check")
def params_check(params: ParamsOption = Path("params.yaml")) -> None:
    """Fail if params.yaml differs from the default composition of conf/."""
    from midilm.common.compose import compose_params_text

    if params.read_text(encoding="utf-8") != compose_params_text():
        console.print(f"[red]{params} differs from conf/; run `midilm params compose`[/red]")
        raise typer.Exit(1)
    console.print(f"{params} matches conf/")


if __name__ == "__main__":
    app()
