"""The Slurm executor against a real single-node Slurm cluster started by infra/slurm/start.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from midilm.augment.stage import run_augment
from midilm.common.paths import Layout
from midilm.orchestration import shards

pytestmark = pytest.mark.slow


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def _start(stage: str, command: list[str], cwd: Path) -> subprocess.Popen[str]:
    """`python -m midilm.orchestration.launch <stage> -- <command>` with MIDILM_EXECUTOR=slurm,
    its output captured (stdout: the job id)."""
    env = {**os.environ, "MIDILM_EXECUTOR": "slurm"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    argv = [sys.executable, "-m", "midilm.orchestration.launch", stage, "--", *command]
    return subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _launch(stage: str, code: str, cwd: Path) -> int:
    launcher = _start(stage, [sys.executable, "-c", code], cwd)
    _, stderr = launcher.communicate()
    print(stderr, file=sys.stderr)  # shown by pytest when the test fails
    return launcher.returncode


def test_a_stage_runs_as_a_slurm_job_and_its_exit_code_propagates(
    slurm_cluster: None, tmp_path: Path
) -> None:
    code = "import os; open('job_id', 'w').write(os.environ['SLURM_JOB_ID'])"
    assert _launch("split", code, tmp_path) == 0
    job_id = (tmp_path / "job_id").read_text()
    assert job_id.isdigit()
    log = tmp_path / "logs" / "slurm" / f"split-{job_id}.log"
    assert "midilm stage split on" in log.read_text()
    assert _launch("split", "raise SystemExit(3)", tmp_path) == 3


def test_a_stage_asking_to_be_requeued_runs_again_and_sbatch_waits_for_it(
    slurm_cluster: None, tmp_path: Path
) -> None:
    """Exit 75 on the first run (as training does after checkpointing on SIGTERM), 0 after."""
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "resources.yaml").write_text("train:\n  cpus: 1\n  requeue: true\n")
    code = (
        "import os, sys; restart = os.environ.get('SLURM_RESTART_COUNT', '0'); "
        "open('runs', 'a').write(restart + chr(10)); sys.exit(75 if restart == '0' else 0)"
    )
    assert _launch("train", code, tmp_path) == 0
    assert (tmp_path / "runs").read_text().split() == ["0", "1"]


SLOW_TO_STOP = """
import os, signal, sys, time
def stop(*_):  # training saving its checkpoint on SIGTERM: seconds, then "requeue me"
    time.sleep(6)
    sys.exit(75)
signal.signal(signal.SIGTERM, stop)
open("job_id.tmp", "w").write(os.environ["SLURM_JOB_ID"])
os.replace("job_id.tmp", "job_id")
time.sleep(300)
"""


def test_a_cancelled_job_fails_its_stage_though_sbatch_reads_exit_code_0(
    slurm_cluster: None, tmp_path: Path
) -> None:
    """`scancel` while the stage still saves: Slurm marks the job CANCELLED at once, with exit
    code 0 until the script ends, and `sbatch --wait` returns that 0. The launcher reads the final
    state: the stage fails (DVC records nothing) and says why."""
    launcher = _start("split", [sys.executable, "-c", SLOW_TO_STOP], tmp_path)
    deadline = time.monotonic() + 120
    while not (tmp_path / "job_id").exists():
        assert time.monotonic() < deadline and launcher.poll() is None, "the job did not start"
        time.sleep(0.2)
    job_id = (tmp_path / "job_id").read_text()
    subprocess.run(["scancel", job_id], check=True)
    stdout, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode != 0, stderr
    assert stdout.strip() == job_id  # the job id, as sbatch --parsable prints it
    assert f"Slurm job {job_id} ended CANCELLED" in stderr


def test_the_augment_stage_as_a_job_array_equals_the_unsharded_run(
    slurm_cluster: None, params: dict, split_layout: Layout, tmp_path: Path
) -> None:
    """`array: 3`: three shard tasks, then the merge job; data/augmented byte for byte as local."""
    local = Layout(tmp_path / "local")
    shutil.copytree(split_layout.root, local.root)
    run_augment(params, local)

    root = split_layout.root
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "infra").mkdir()
    (root / "infra" / "resources.yaml").write_text("augment: {cpus: 1, mem: 2G, array: 3}\n")
    code = "from midilm.cli import app; app(['augment'])"
    assert _launch("augment", code, root) == 0
    logs = sorted(p.name for p in (root / "logs" / "slurm").glob("augment-*.log"))
    assert len(logs) == 4 and sum("_" in name for name in logs) == 3, logs  # 3 shards + merge
    assert tree_bytes(split_layout.augment_dir) == tree_bytes(local.augment_dir)
    assert not shards.shards_root(split_layout.augment_dir).exists()


GLOO_WORKER = """
import os, signal, sys, time
import torch, torch.distributed as dist

stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
dist.init_process_group("gloo")
rank, restart = dist.get_rank(), os.environ.get("SLURM_RESTART_COUNT", "0")
total = torch.tensor([rank + 1.0])
dist.all_reduce(total)
open(f"rank{rank}-run{restart}", "w").write(f"{dist.get_world_size()} {total.item()}")
if restart == "0":  # the first run waits for SIGTERM, "checkpoints" and asks to be requeued
    while not stop:
        time.sleep(0.1)
    open(f"rank{rank}-checkpoint", "w").write("saved")
    sys.exit(75)
"""


def test_gpu_template_ranks_meet_checkpoint_on_sigterm_and_are_requeued(
    slurm_cluster: None, tmp_path: Path
) -> None:
    """The gpu template with CPU ranks (gloo): srun starts torchrun, two ranks rendezvous on the
    first node; SIGTERM to the batch shell (what --signal=B:TERM@grace sends before the time
    limit) reaches both ranks, which save and exit; the job is requeued and `sbatch --wait` waits
    for the second run (Slurm holds a requeued job cred_expire = 30 s here)."""
    (tmp_path / "worker.py").write_text(GLOO_WORKER)
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "resources.yaml").write_text(
        "train: {cpus: 2, mem: 2G, procs_per_node: 2, requeue: true, signal_grace_s: 60}\n"
    )
    launcher = _start("train@ddp", [sys.executable, "worker.py"], tmp_path)
    assert launcher.stdout is not None
    job_id = launcher.stdout.readline().strip()
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"rank{r}-run0").exists() for r in (0, 1)):
        assert time.monotonic() < deadline and launcher.poll() is None, "ranks did not start"
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=TERM", "--batch", job_id], check=True)
    launcher.communicate(timeout=400)
    assert launcher.returncode == 0
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}-run0").read_text() == "2 3.0"  # world 2, 1 + 2
        assert (tmp_path / f"rank{rank}-checkpoint").exists()
        assert (tmp_path / f"rank{rank}-run1").exists()
    log = (tmp_path / "logs" / "slurm" / f"train-ddp-{job_id}.log").read_text()
    assert "1 nodes x 2 ranks, rendezvous" in log and "restart 0" in log  # both runs' lines
    assert "stopped on SIGTERM (exit 1); requeueing" in log and "restart 1" in log
