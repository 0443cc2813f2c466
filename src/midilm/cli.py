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
    from midilm.datasets.stage import read_spec

    table = Table("name", "kind", "status", "license", title="midilm datasets")
    for entry in list_sources(read_spec(load_params(params))):
        table.add_row(*(str(entry.get(k, "")) for k in ("name", "kind", "status", "license")))
    console.print(table)


@datasets_app.command("add-folder")
def datasets_add_folder(
    name: Annotated[str, typer.Argument(help="Dataset name (letters, digits, . _ -).")],
    path: Annotated[Path, typer.Argument(help="Folder of MIDI, ABC, GuitarPro or JAMS files.")],
    license: Annotated[str, typer.Option("--license", help="License of the files.")] = "",
    use: Annotated[
        bool, typer.Option("--use/--no-use", help="Also recompose params.yaml with it.")
    ] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Write conf/dataset/NAME.yaml for a folder of your own files (every other key comes from
    conf/dataset/base.yaml) and, with --use, recompose params.yaml with dataset=NAME, keeping
    the other choices params.yaml was composed with."""
    from midilm.datasets.add_folder import use_folder_dataset, write_folder_dataset

    written = write_folder_dataset(name, path, license=license, force=force)
    console.print(f"wrote {written}")
    if use:
        overrides, lost = use_folder_dataset(name, params)
        console.print(f"wrote {params} (midilm params compose {' '.join(overrides)})")
        if lost:
            console.print(f"[yellow]replaced {len(lost)} keys no conf/ file gave: {lost}[/yellow]")
    else:
        console.print(f"use it with `dvc exp run -S dataset={name}`")


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
def params_check(
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="The composition to compare with (default: found from the file)"),
    ] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Check that params.yaml is a composition of conf/ and say which one (e.g. dataset=groove
    profile=smoke); otherwise name the closest one and the keys that differ."""
    import yaml

    from midilm.common.compose import closest_composition, compose_params_text

    text = params.read_text(encoding="utf-8")
    match = closest_composition(yaml.safe_load(text) or {}, overrides=overrides)
    chosen = " ".join(match.overrides)
    label = chosen or "the defaults"
    if match.exact and text == compose_params_text(overrides=match.overrides):
        console.print(f"{params} matches conf/ composed with {label}")
        return
    if match.exact:
        console.print(f"[red]{params} has the values of conf/ composed with {label}, not its "
                      f"text; run `midilm params compose {chosen}`[/red]")  # fmt: skip
        raise typer.Exit(1)
    console.print(f"[red]{params} differs from conf/ composed with {label} (the closest "
                  f"composition) in {len(match.differences)} keys:[/red]")  # fmt: skip
    for key, (have, composed) in list(match.differences.items())[:20]:
        console.print(f"  {key}: {have!r} in {params}, {composed!r} from conf/")
    console.print(f"Move the change into conf/ (or pass it as an override), then run "
                  f"`midilm params compose {chosen}`.")  # fmt: skip
    raise typer.Exit(1)


if __name__ == "__main__":
    app()
