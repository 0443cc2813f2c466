"""A stage SIGKILLed while it writes never leaves outputs that look complete: the output folder
is absent or still the previous complete version, the partial files sit only in a temporary
folder beside it, and DVC reports the stage as changed (slow test, a smoke repo)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from midilm.common.paths import Layout
from midilm.store.stage import run_pack
from tests.smoke_repo import GIT_ENV, make_smoke_repo

KILLHOOK = Path(__file__).parent / "killhook"
REPO_ROOT = Path(__file__).resolve().parents[2]


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def killed_env(kill_at: str) -> dict[str, str]:
    """This environment with the kill hook armed: SIGKILL after the given call."""
    env = {k: v for k, v in os.environ.items() if k != "MIDILM_EXECUTOR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(KILLHOOK), env.get("PYTHONPATH")]))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MIDILM_KILL_AT"] = kill_at
    env["MIDILM_NO_PROGRESS"] = "1"
    return env


def run_stage_killed(
    stage: list[str], root: Path, kill_at: str
) -> subprocess.CompletedProcess[str]:
    """`python -m midilm <stage...>` in `root` with the kill hook armed."""
    return subprocess.run(
        [sys.executable, "-m", "midilm", *stage],
        cwd=root,
        env=killed_env(kill_at),
        capture_output=True,
        text=True,
        check=False,
    )


def temp_siblings(output: Path) -> list[Path]:
    """atomic_dir's temporary folders for `output` (`.<name>.<random>.tmp` beside it)."""
    return sorted(output.parent.glob(f".{output.name}.*.tmp"))


def assert_no_partial_file_inside(output: Path) -> None:
    if output.exists():
        assert not [p for p in output.rglob("*") if p.name.endswith(".tmp")], output


def test_pack_killed_mid_write_keeps_the_previous_complete_version(
    tiny: Any, fresh_layout: Any
) -> None:
    layout: Layout = fresh_layout()
    params = tiny()
    (layout.root / "params.yaml").write_text(yaml.safe_dump(params))
    run_pack(params, layout, "remi")  # the previous, complete version
    packed = layout.packed_dir("remi")
    before = tree_bytes(packed)

    # killed after the train and valid splits' Arrow files: train/valid binidx written, test not
    result = run_stage_killed(
        ["pack", "remi"], layout.root, "midilm.store.packed:write_sequences_arrow:2"
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "killhook: SIGKILL after call 2" in result.stderr

    assert tree_bytes(packed) == before  # the final path still holds the complete version
    assert_no_partial_file_inside(packed)
    (partial,) = temp_siblings(packed)  # what the killed run had written, beside it
    written = {p.name for p in partial.iterdir()}
    assert {"train.bin", "train.idx", "train.arrow", "valid.arrow"} <= written
    assert "test.bin" not in written and "stats.json" not in written


def test_augment_killed_on_its_first_run_leaves_no_output(
    params: dict[str, Any], split_layout: Layout
) -> None:
    (split_layout.root / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_stage_killed(
        ["augment"], split_layout.root, "midilm.augment.copies:augment_piece:3"
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert not split_layout.augment_dir.exists()
    (partial,) = temp_siblings(split_layout.augment_dir)
    assert len(list(partial.rglob("*.mid"))) == 2 * 3  # three pieces' copies, then killed
    assert not (partial / "manifest.parquet").exists()


def test_a_killed_shard_is_never_merged(params: dict[str, Any], split_layout: Layout) -> None:
    """A shard killed mid-write leaves no shard folder, so the merge refuses to run."""
    (split_layout.root / "params.yaml").write_text(yaml.safe_dump(params))
    command = [sys.executable, "-m", "midilm", "augment"]
    env = killed_env("midilm.augment.copies:augment_piece:2")
    shard0 = {**env, "MIDILM_SHARD_COUNT": "2", "MIDILM_SHARD_INDEX": "0"}
    cwd = split_layout.root
    killed = subprocess.run(command, cwd=cwd, env=shard0, check=False)
    assert killed.returncode == -signal.SIGKILL
    merge = {k: v for k, v in env.items() if k != "MIDILM_KILL_AT"}
    merge.update(MIDILM_SHARD_COUNT="2", MIDILM_SHARD_MERGE="1")
    result = subprocess.run(command, cwd=cwd, env=merge, capture_output=True, text=True)
    assert result.returncode != 0 and "shard-0000-of-0002 is missing" in result.stderr
    assert not split_layout.augment_dir.exists()


def _dvc(repo: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["dvc", *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.slow
def test_dvc_never_takes_a_killed_stage_as_complete(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Smoke repo: `dvc repro augment`, change an augment param, `dvc repro augment` killed mid-
    write: no partial output at data/augmented, dvc.lock untouched, `dvc status` says changed;
    the next `dvc repro` completes and leaves the stage up to date."""
    repo = make_smoke_repo(REPO_ROOT, tmp_path_factory.mktemp("smoke_kill"))
    env = killed_env("")
    del env["MIDILM_KILL_AT"]
    env.update(GIT_ENV)
    first = _dvc(repo, "repro", "augment", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    augmented = repo / "data" / "augmented"
    n_copies = len(list(augmented.rglob("*.mid")))
    lock = (repo / "dvc.lock").read_text()

    params = repo / "params.yaml"
    text = params.read_text()
    multiplicity = int(re.search(r"\n  multiplicity: (\d+)\n", text)[1])  # type: ignore[index]
    changed = text.replace(f"multiplicity: {multiplicity}", f"multiplicity: {multiplicity + 1}", 1)
    params.write_text(changed)
    killed = _dvc(
        repo,
        "repro",
        "augment",
        env={**env, "MIDILM_KILL_AT": "midilm.augment.copies:augment_piece:4"},
    )
    assert killed.returncode != 0 and "killhook: SIGKILL" in killed.stdout + killed.stderr
    # DVC removes a stage's outputs before running it; the killed run left only a temporary folder
    assert not augmented.exists()
    (partial,) = temp_siblings(augmented)
    assert len(list(partial.rglob("*.mid"))) > 0 and not (partial / "summary.json").exists()
    assert (repo / "dvc.lock").read_text() == lock
    status = _dvc(repo, "status", "augment", env=env)
    out = " ".join(status.stdout.split())
    assert status.returncode == 0 and "augment: changed deps:" in out, out
    assert "changed outs: deleted: data/augmented" in out, out

    for leftover in temp_siblings(augmented):
        shutil.rmtree(leftover)
    again = _dvc(repo, "repro", "augment", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(list(augmented.rglob("*.mid"))) > n_copies
    clean = _dvc(repo, "status", "augment", env=env)
    assert "up to date" in clean.stdout, clean.stdout
