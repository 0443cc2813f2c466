"""`midilm wandb sync`: upload the wandb runs that training wrote offline on compute nodes.

Compute nodes rarely reach the internet, so batch jobs run wandb with WANDB_MODE=offline
(infra/slurm/templates set it); each run is a folder `wandb/offline-run-<time>-<id>/` holding
`run-<id>.wandb`, wandb's record log. From a machine with a connection (a login node) this command
finds the finished, not yet synced runs under `--dir` and hands them to `wandb sync`, which marks
each with `run-<id>.wandb.synced`.

Exit codes: 0 when there is nothing to do, on --dry-run, or when `wandb sync` succeeded; 75
(EX_TEMPFAIL, "try again later") when runs wait for a sync but the wandb server cannot be reached;
otherwise `wandb sync`'s own exit code.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

DEFAULT_BASE_URL = "https://api.wandb.ai"
NO_CONNECTION_EXIT = 75
CONNECT_TIMEOUT_S = 3.0

# wandb's record log (a LevelDB-style log): a 7-byte file header, then 32 KiB blocks of records,
# each with a 7-byte header (crc32, length, type) and a protobuf `Record`.
_FILE_HEADER = b":W&B\xe1\xbe\x00"
_BLOCK, _RECORD_HEADER = 32768, 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass(frozen=True)
class OfflineRun:
    """One `offline-run-*` folder and its state."""

    path: Path
    log: Path | None  # run-<id>.wandb
    finished: bool  # wandb wrote its exit record: `run.finish()` ran (or the script ended)
    synced: bool  # `wandb sync` marked it run-<id>.wandb.synced

    @property
    def run_id(self) -> str:
        return self.path.name.rsplit("-", 1)[-1]


def find_offline_runs(root: Path) -> list[OfflineRun]:
    """Every `wandb/offline-run-*` folder under `root` (or `root` itself), sorted by path."""
    folders = {p for p in root.rglob("offline-run-*") if p.is_dir() and p.parent.name == "wandb"}
    if root.name.startswith("offline-run-") and root.is_dir():
        folders.add(root)
    runs = []
    for folder in sorted(folders):
        logs = sorted(folder.glob("run-*.wandb"))
        log = logs[0] if logs else None
        synced = log is not None and log.with_name(log.name + ".synced").exists()
        runs.append(OfflineRun(folder, log, log is not None and has_exit_record(log), synced))
    return runs


def has_exit_record(log: Path) -> bool:
    """Whether wandb's record log holds the exit record it writes when a run finishes."""
    from wandb.proto import wandb_internal_pb2

    for payload in _records(log.read_bytes()):
        record = wandb_internal_pb2.Record()
        try:
            record.ParseFromString(payload)
        except Exception:  # a torn record at the end of a killed run's log
            return False
        if record.WhichOneof("record_type") == "exit":
            return True
    return False


def _records(data: bytes) -> Iterator[bytes]:
    if not data.startswith(_FILE_HEADER):
        return
    pos, pending = len(_FILE_HEADER), b""
    while pos + _RECORD_HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _RECORD_HEADER:  # block trailer: zero padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + _RECORD_HEADER])
        chunk = data[pos + _RECORD_HEADER : pos + _RECORD_HEADER + length]
        if kind == 0 or len(chunk) < length:  # preallocated zeros or a torn write: the end
            return
        pos += _RECORD_HEADER + length
        pending = chunk if kind in (_FULL, _FIRST) else pending + chunk
        if kind in (_FULL, _LAST):
            yield pending
            pending = b""


def base_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("WANDB_BASE_URL") or DEFAULT_BASE_URL


def connection_error(
    url: str, timeout_s: float = CONNECT_TIMEOUT_S, env: Mapping[str, str] | None = None
) -> str | None:
    """None when a TCP connection to the server of `url` (or to the HTTP(S) proxy the environment
    names for it) opens within `timeout_s`, else why not."""
    env = os.environ if env is None else env
    parts = urlsplit(url)
    proxy = env.get(f"{parts.scheme}_proxy") or env.get(f"{parts.scheme.upper()}_PROXY")
    if proxy:
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if not parts.hostname:
        return f"WANDB_BASE_URL={url!r} names no host"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def sync(root: Path, dry_run: bool = False, echo: Callable[[str], object] = print) -> int:
    """List the runs under `root`, check the connection, sync what waits; the exit code."""
    if not root.is_dir():
        echo(f"{root} is not a folder: no offline wandb runs to sync (use --dir)")
        return 0
    runs = find_offline_runs(root)
    if not runs:
        echo(f"no offline wandb runs under {root} (looked for wandb/offline-run-*)")
        return 0
    todo = [r for r in runs if r.finished and not r.synced]
    for run in runs:
        state = "synced" if run.synced else "to sync" if run.finished else "not finished"
        echo(f"{state:>12}  {run.path}")
    unfinished = [r for r in runs if not r.finished and not r.synced]
    if unfinished:
        echo(
            f"{len(unfinished)} run(s) not finished (still running, or killed before "
            "`run.finish()`): skipped; `wandb sync <folder>` uploads what such a run logged"
        )
    if not todo:
        echo(f"nothing to sync under {root}")
        return 0
    url = base_url()
    error = connection_error(url)
    if dry_run:
        reach = "reachable" if error is None else f"not reachable ({error})"
        echo(f"dry run: would sync {len(todo)} run(s) to {url}, which is {reach}")
        return 0
    if error is not None:
        echo(
            f"no connection to {url} ({error}): not syncing {len(todo)} run(s). Run "
            f"`midilm wandb sync --dir {root}` again from a machine with internet access "
            "(e.g. a login node), or set WANDB_BASE_URL to a reachable wandb server."
        )
        return NO_CONNECTION_EXIT
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    argv = [sys.executable, "-m", "wandb", "sync", *(str(r.path) for r in todo)]
    echo(f"syncing {len(todo)} run(s) to {url}: {' '.join(argv[2:])}")
    return subprocess.call(argv, env=env)


app = typer.Typer(help="Weights & Biases runs written offline on compute nodes.")


@app.command("sync")
def sync_command(
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder searched for wandb/offline-run-* (recursively).")
    ] = Path("models"),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be synced; upload nothing.")
    ] = False,
) -> None:
    """Sync finished offline runs when the wandb server is reachable (exit 75 when it is not)."""
    code = sync(directory, dry_run, echo=typer.echo)
    raise typer.Exit(code)
