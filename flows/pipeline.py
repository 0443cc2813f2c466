"""The midilm DAG as a Prefect flow: one task per DVC stage, after its upstream stages.

    python -m flows.pipeline --profile smoke --executor slurm     # or via prefect.yaml deployments

Independent stages (the `tokenize@<tok>` items) run at the same time; DVC still decides what is up
to date, so a second run only checks hashes. Sweeps are not this flow's job: queue them with
`dvc exp run --queue -S ...` (docs/cluster.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, wait
from prefect.task_runners import ThreadPoolTaskRunner

from flows.dvc_dag import compose_params, repro_stage
from midilm.orchestration.dag import read_dag, select_stages
from midilm.orchestration.launch import EXECUTORS

# Threads waiting on upstream stages hold a worker, so this bounds stages running at once.
MAX_WORKERS = int(os.environ.get("MIDILM_FLOW_WORKERS", "8"))


@flow(name="midilm-pipeline", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))
def midilm_pipeline(
    profile: str = "default",
    stages: list[str] | None = None,
    executor: str = "local",
    overrides: list[str] | None = None,
    repo: str = ".",
) -> dict[str, str]:
    """Compose params.yaml (profile + overrides), then reproduce the DAG stage by stage.

    `stages` runs only those stages (a foreach base name like `tokenize` means all its items), in
    DAG order, without adding what they need: their inputs must already be there. Returns each
    stage's outcome ("ran" or "up to date"); a failed stage fails the flow with its log path.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    root = str(Path(repo).resolve())
    composed = compose_params.submit(root, profile, list(overrides or []))
    composed.result()
    dag = select_stages(read_dag(root), stages)
    futures: dict[str, PrefectFuture[str]] = {}
    for name, upstream in dag.items():  # topological order, so upstream futures already exist
        futures[name] = repro_stage.with_options(task_run_name=name).submit(
            name, root, executor, wait_for=[futures[up] for up in upstream]
        )
    wait(list(futures.values()))
    failed = [name for name, future in futures.items() if future.state.is_failed()]
    if failed:
        skipped = [n for n, f in futures.items() if not f.state.is_final()]
        get_run_logger().error("failed: %s; not run: %s", ", ".join(failed), ", ".join(skipped))
        futures[failed[0]].result()  # raises the first failed stage's StageFailed
    return {name: future.result() for name, future in futures.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--executor", default=os.environ.get("MIDILM_EXECUTOR", "local"))
    parser.add_argument("--stage", action="append", dest="stages", help="repeatable")
    parser.add_argument("--repo", default=".")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train.steps=100")
    args = parser.parse_args(argv)
    outcome = midilm_pipeline(
        profile=args.profile,
        stages=args.stages,
        executor=args.executor,
        overrides=args.overrides,
        repo=args.repo,
    )
    for name, state in outcome.items():
        print(f"{name}: {state}")


if __name__ == "__main__":
    main()
