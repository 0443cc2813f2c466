"""`midilm listen plan|serve|export`: a typer sub-app (the main CLI mounts it as `listen`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midilm.common.params import load_params, to_plain

app = typer.Typer(
    help="Listening test: plan blinded sessions, serve them in the browser, export ratings.",
    no_args_is_help=True,
    add_completion=False,
)

TestDir = Annotated[
    Path, typer.Option("--dir", help="The test folder (test.json, audio/, ratings.sqlite).")
]


@app.command("plan")
def plan_command(
    participants: Annotated[int, typer.Option("--participants", "-n", help="How many.")],
    test_dir: TestDir,
    params: Annotated[Path, typer.Option("--params", help="Params file to read.")] = Path(
        "params.yaml"
    ),
    root: Annotated[
        Path, typer.Option("--root", help="Repository root (reads outputs/audio/*/audio.json).")
    ] = Path("."),
) -> None:
    """Gather the stimuli, prepare their audio and draw each participant's session."""
    from midilm.listen.plan import create_test
    from midilm.specs.listen import listen_spec

    plain = to_plain(load_params(params))
    test = create_test(
        root, test_dir, list(plain.get("models") or {}), participants, listen_spec(plain)
    )
    typer.echo(
        f"planned {len(test.sessions)} sessions over {len(test.stimuli)} stimuli in "
        f"{test_dir}; the stimulus list is {test_dir / 'plan.csv'}, the links "
        f"{test_dir / 'links.csv'} (append them to http://HOST:PORT)."
    )


@app.command("serve")
def serve_command(
    test_dir: TestDir,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind (local only by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8765,
) -> None:
    """Run the test's web app until interrupted; prints each participant's link."""
    serve(test_dir, host, port)


@app.command("export")
def export_command(
    test_dir: TestDir,
    out: Annotated[Path, typer.Option("--out", help="CSV to write (commit it for T8).")] = Path(
        "reports/listening/ratings.csv"
    ),
) -> None:
    """Write every rating so far to a CSV (one row per rating, unblinded)."""
    from midilm.listen.export import export_ratings

    count = export_ratings(test_dir, out)
    typer.echo(f"{count} ratings written to {out}")


def serve(test_dir: Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the test in `test_dir` with uvicorn (one process: SQLite is the only state)."""
    import uvicorn

    from midilm.listen.app import create_app
    from midilm.listen.testdir import load_test

    test = load_test(test_dir)
    for participant in test.sessions:
        typer.echo(f"{participant}: http://{host}:{port}{test.link(participant)}")
    uvicorn.run(create_app(test_dir), host=host, port=port, log_level="warning")
