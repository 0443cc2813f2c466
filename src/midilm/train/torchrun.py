"""`python -m midilm.train.torchrun <torchrun arguments>`: torchrun that asks to be requeued.

torchrun forwards SIGTERM (Slurm pre-emption, scancel, the time limit's warning signal) to its
workers, which checkpoint and exit with REQUEUE_EXIT_CODE, but torchrun itself then fails with
exit code 1. This wrapper exits with REQUEUE_EXIT_CODE instead, so a Slurm job launched through
torchrun is requeued like one launched with `srun` (where each task exits with it directly).
"""

from __future__ import annotations

import signal
import sys

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.run import main

from midilm.orchestration.launch import REQUEUE_EXIT_CODE


def run(argv: list[str] | None = None) -> int:
    try:
        main(argv)
    except SignalException as exc:
        if exc.sigval == signal.SIGTERM:
            print(f"torchrun: SIGTERM; exiting with {REQUEUE_EXIT_CODE} to be requeued")
            return REQUEUE_EXIT_CODE
        raise
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
