"""The `midilm` command: one sub-command per DVC stage (what `dvc.yaml` runs, through the
launcher), plus dataset listing, params tools and wandb sync.

Each stage is described once, here: `midilm <stage> --help`. A stage command runs the stage's
code in this process (without DVC's caching); `dvc repro` runs the same command per stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from midilm.common import wandb_sync
from midilm.common.params import load_params, to_plain
from midilm.common.paths import Layout
from midilm.listen import cli as listen_cli

app = typer.Typer(
    help="midilm: reproducible data + training pipeline for symbolic-music language models.",
    no_args_is_help=True,
    add_completion=False,
)
datasets_app = typer.Typer(
    help="Stage `datasets`: build the selected datasets, or list them.", no_args_is_help=True
)
seqgan_app = typer.Typer(
    help="SeqGAN's two experiments (stages `seqgan_oracle`, `seqgan_music`).", no_args_is_help=True
)
params_app = typer.Typer(
    help="Compose and check params.yaml from conf/ (Hydra).", no_args_is_help=True
)
app.add_typer(datasets_app, name="datasets")
app.add_typer(seqgan_app, name="seqgan")
app.add_typer(params_app, name="params")
app.add_typer(wandb_sync.app, name="wandb")
app.add_typer(listen_cli.app, name="listen")
console = Console()

ParamsOption = Annotated[Path, typer.Option("--params", help="Params file to read.")]
RootOption = Annotated[Path, typer.Option("--root", help="Repository root (outputs go under it).")]
TokenizerKey = Annotated[str, typer.Argument(help="A key of params `tokenizers`.")]
ModelKey = Annotated[str, typer.Argument(help="A key of params `models`.")]
SamplesKey = Annotated[
    str, typer.Argument(help="A key of params `models`, or `seqgan` (SeqGAN's melodies).")
]


def _plain(params: Path) -> dict[str, Any]:
    return to_plain(load_params(params))


@app.command()
def split(params: ParamsOption = Path("params.yaml"), root: RootOption = Path(".")) -> None:
    """Stage `split`: train/valid/test by official split, else by note-content hash (equal
    content shares one split) -> data/split/."""
    from midilm.datasets.stage import run_split

    run_split(load_params(params), Layout(root))


@app.command()
def augment(params: ParamsOption = Path("params.yaml"), root: RootOption = Path(".")) -> None:
    """Stage `augment`: transposed, modulated, tempo-scaled, velocity-jittered copies of the
    train pieces, and the manifest of every piece to tokenize -> data/augmented/."""
    from midilm.augment.stage import run_augment

    run_augment(_plain(params), Layout(root))


@app.command()
def tokenize(
    key: TokenizerKey, params: ParamsOption = Path("params.yaml"), root: RootOption = Path(".")
) -> None:
    """Stage `tokenize@KEY`: every piece encoded with tokenizer KEY, with stats and round-trip
    F1 -> data/tokens/KEY/ (timing: outputs/speed/tokenize-KEY.json)."""
    from midilm.tokenize.stage import run_tokenize

    run_tokenize(_plain(params), Layout(root), key)


@app.command()
def pack(
    key: TokenizerKey, params: ParamsOption = Path("params.yaml"), root: RootOption = Path(".")
) -> None:
    """Stage `pack@KEY`: tokenizer KEY's sequences as Arrow, Megatron binidx and (text
    encodings) JSONL per split -> data/packed/KEY/."""
    from midilm.store.stage import run_pack

    run_pack(_plain(params), Layout(root), key)


@app.command()
def train(
    key: ModelKey, params: ParamsOption = Path("params.yaml"), root: RootOption = Path(".")
) -> None:
    """Stage `train@KEY`: train model KEY (from scratch, or fine-tuned) through the one training
    loop -> models/KEY/{weights/, metrics.json, speed.json, train_log.csv, live/}. Several
    processes: `python -m midilm.train.torchrun --nproc_per_node N -m midilm train KEY`."""
    from midilm.train.stage import run_train

    run_train(_plain(params), Layout(root), key)


@app.command()
def generate(
    key: ModelKey,
    params: ParamsOption = Path("params.yaml"),
    root: RootOption = Path("."),
    prompt: Annotated[
        str | None, typer.Option(help="test | midi | text | random | audio | none")
    ] = None,
    prompt_path: Annotated[
        Path | None, typer.Option(help="The MIDI, text or audio file of the prompt.")
    ] = None,
    seconds: Annotated[
        float | None, typer.Option(help="Continue each sample until it lasts this long.")
    ] = None,
    num_samples: Annotated[int | None, typer.Option(help="How many samples.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="New tokens per sample (max).")] = None,
    temperature: Annotated[float | None, typer.Option()] = None,
    top_p: Annotated[float | None, typer.Option()] = None,
    top_k: Annotated[int | None, typer.Option()] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: outputs/samples/KEY).")
    ] = None,
) -> None:
    """Stage `generate@KEY`: continue prompts (default: the first tokens of test pieces) with
    model KEY -> outputs/samples/KEY/{sample_NNN.mid, samples.json}. Options override params
    `generate`, e.g. one 30 s piece from your MIDI file: `midilm generate gpt --prompt midi
    --prompt-path my.mid --seconds 30 --num-samples 1 --out piece/`.
    """
    from midilm.generate.stage import run_generate

    overrides = {
        "prompt": prompt,
        "prompt_path": None if prompt_path is None else str(prompt_path),
        "target_seconds": seconds,
        "num_samples": num_samples,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
    }
    given = {k: v for k, v in overrides.items() if v is not None}
    result = run_generate(_plain(params), Layout(root), key, out, **given)
    for sample in result["samples"]:
        console.print(f"{sample['path']}: {sample['notes']} notes, {sample['seconds']} s")


@app.command()
def render(
    key: SamplesKey, params: ParamsOption = Path("params.yaml"), root: RootOption = Path(".")
) -> None:
    """Stage `render@KEY`: model KEY's samples and the pieces they continued rendered with
    FluidSynth (reverb and chorus off) to FLAC and MP3 -> outputs/audio/KEY/ (audio.json).
    Stage `render_seqgan` is KEY `seqgan`."""
    from midilm.audio.stage import run_render

    run_render(_plain(params), Layout(root), key)


@app.command()
def lofi(
    params: ParamsOption = Path("params.yaml"),
    root: RootOption = Path("."),
    text: Annotated[
        str | None, typer.Option(help="Text to music: MusicGen, basic-pitch, then the mix.")
    ] = None,
    seconds: Annotated[float | None, typer.Option(help="Length of the --text mix.")] = None,
    model: Annotated[
        str | None, typer.Option(help="With --text: a key of `models` that continues the prompt.")
    ] = None,
    out: Annotated[Path, typer.Option(help="With --text: the mix file.")] = Path("lofi.mp3"),
) -> None:
    """Stage `lofi`: seed 001's lo-fi mixes (piano model's samples, drums, a vinyl layer, fade)
    -> outputs/lofi/. With --text, seed 001's text-to-lo-fi path instead: `midilm lofi --text
    "rainy night piano" --seconds 60` (needs MusicGen's weights, audio.musicgen.model)."""
    if text is None:
        from midilm.audio.stage import run_lofi

        run_lofi(_plain(params), Layout(root))
        return
    from midilm.audio.stage import run_text_to_lofi

    result = run_text_to_lofi(_plain(params), Layout(root), text, seconds, model, out)
    console.print(f"wrote {out}: {result['mix'].get('seconds')} s")


@app.command()
def reference(params: ParamsOption = Path("params.yaml"), root: RootOption = Path(".")) -> None:
    """Stage `reference`: the test split analysed once (per-piece and seed 001's metrics) and
    real music against it (train vs test pieces) -> outputs/reference/."""
    from midilm.evaluate.stage import run_reference

    run_reference(_plain(params), Layout(root))


@app.command()
def evaluate(
    key: SamplesKey, params: ParamsOption = Path("params.yaml"), root: RootOption = Path(".")
) -> None:
    """Stage `evaluate@KEY`: model KEY's samples scored (per-piece metrics, seed 001's metrics in
    both variants, their distribution against the test split's) -> outputs/metrics/KEY/.
    Stage `evaluate_seqgan` is KEY `seqgan`."""
    from midilm.evaluate.stage import run_evaluate

    run_evaluate(_plain(params), Layout(root), key)


@app.command()
def complexity(params: ParamsOption = Path("params.yaml"), root: RootOption = Path(".")) -> None:
    """Stage `complexity`: decoding time per token and cache memory against context length
    (T7) -> outputs/complexity/complexity.json."""
    from midilm.models.stage import run_complexity

    run_complexity(_plain(params), Layout(root))


@seqgan_app.command("oracle")
def seqgan_oracle(params: ParamsOption = Path("params.yaml"), root: RootOption = Path(".")) -> None:
    """Stage `seqgan_oracle`: SeqGAN's synthetic experiment (an oracle LSTM's sequences;
    random, MLE and SeqGAN generators scored by NLL-oracle; the learning curve)
    -> outputs/seqgan/oracle/."""
    from midilm.seqgan.stage import run_seqgan_oracle

    run_seqgan_oracle(_plain(params), Layout(root))


@seqgan_app.command("music")
def seqgan_music(params: ParamsOption = Path("params.yaml"), root: RootOption = Path(".")) -> None:
    """Stage `seqgan_music`: SeqGAN's melody task on the split's folk tunes (BLEU-4 and MSE of
    MLE and SeqGAN; the learning curve) -> outputs/seqgan/music/, the SeqGAN generator's melodies
    as MIDI -> outputs/samples/seqgan/."""
    from midilm.seqgan.stage import run_seqgan_music

    run_seqgan_music(_plain(params), Layout(root))


@app.command()
def report(params: ParamsOption = Path("params.yaml"), root: RootOption = Path(".")) -> None:
    """Stage `report`: every thesis table with a provenance line -> reports/tables/."""
    from midilm.report.stage import run_report

    run_report(_plain(params), Layout(root))


@app.command()
def site(params: ParamsOption = Path("params.yaml"), root: RootOption = Path(".")) -> None:
    """Stage `site`: the static results site (every table, loss curves, each model's samples as
    piano rolls and audio beside the pieces they continued, the lo-fi mixes) -> reports/site/."""
    from midilm.report.site.stage import run_site

    run_site(_plain(params), Layout(root))


@datasets_app.command("build")
def datasets_build(
    params: ParamsOption = Path("params.yaml"), root: RootOption = Path(".")
) -> None:
    """Stage `datasets`: the selected datasets as canonical MIDI, a manifest and a quarantine
    report of every bad file -> data/raw/."""
    from midilm.datasets.stage import run_datasets

    run_datasets(load_params(params), Layout(root))


@datasets_app.command("list")
def datasets_list(params: ParamsOption = Path("params.yaml")) -> None:
    """List every dataset source with its status and license."""
    from midilm.common.params import load_params
    from midilm.datasets.registry import list_sources
    from midilm.specs.dataset import dataset_spec

    table = Table("name", "kind", "status", "license", title="midilm datasets")
    for entry in list_sources(dataset_spec(load_params(params))):
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
