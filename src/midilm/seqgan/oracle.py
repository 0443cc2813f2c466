"""The synthetic oracle experiment (SeqGAN paper, "Synthetic data experiments").

An oracle LSTM with the generator's equations (vocab 5000, embedding 32, hidden 32, length 20)
stands in for the real data: it samples the training sequences, and a generator is scored by
NLL-oracle, the oracle's mean negative log-likelihood per token of sequences the generator
samples (lower is better; the reference code logs this per-token mean). The oracle's weights are
a seeded N(0, 1) draw, or the reference oracle's 15 arrays from an `.npz` file (read with
`allow_pickle=False`: never unpickled), so that a user who has the paper's oracle can compare
with its Table 1 (random 10.310, MLE 9.038, SeqGAN 8.736).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from midilm.common.seeding import derive_seed
from midilm.seqgan.algorithm import Task, Trained, data_hash, device_generator
from midilm.seqgan.experiment import run_experiment
from midilm.seqgan.lstm import REFERENCE_ORDER, SeqLSTM
from midilm.specs.seqgan import OracleSpec, SeqGANSpec

PAPER_TABLE_1 = {"random": 10.310, "mle": 9.038, "seqgan": 8.736}  # NLL-oracle, Yu et al. 2017


def build_oracle(spec: OracleSpec, start_token: int, device: torch.device) -> SeqLSTM:
    """The oracle: a seeded N(0, init_std) draw, or the arrays of `spec.weights`."""
    seeded = torch.Generator().manual_seed(derive_seed(spec.seed, "seqgan-oracle"))
    oracle = SeqLSTM(
        spec.vocab, spec.embedding, spec.hidden, spec.length, start_token, spec.init_std, seeded
    )
    if spec.weights:
        oracle.load_arrays(read_oracle_npz(Path(spec.weights)), spec.weights)
    return oracle.to(device).requires_grad_(False)


def read_oracle_npz(path: Path) -> dict[str, np.ndarray]:
    """The 15 named arrays of an oracle `.npz` (no pickled objects allowed)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such oracle file; set seqgan.oracle.weights to an .npz holding "
            f"{list(REFERENCE_ORDER)}, or to null for the seeded oracle"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except ValueError as exc:  # object arrays need pickle: refused
        raise ValueError(
            f"{path}: not a plain .npz of numeric arrays ({exc}); save the 15 arrays with "
            "numpy.savez(path, embedding=..., Wi=..., ...)"
        ) from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None


def save_oracle_npz(oracle: SeqLSTM, path: Path) -> None:
    """Write an oracle's 15 arrays in the reference's names (the format `weights` reads)."""
    arrays = oracle.to_arrays()
    np.savez(path, **{name: arrays[name] for name in REFERENCE_ORDER})


def oracle_task(spec: SeqGANSpec, device: torch.device) -> tuple[Task, SeqLSTM]:
    """The experiment's task: the oracle's samples as training and validation data, NLL-oracle
    of `curve_samples` generated sequences at each learning-curve point."""
    o = spec.oracle
    oracle = build_oracle(o, spec.generator.start_token, device)
    train = oracle.sample(o.train_sequences, device_generator(device, o.seed, "oracle-train"))
    valid = oracle.sample(o.valid_sequences, device_generator(device, o.seed, "oracle-valid"))

    def curve(generator: SeqLSTM, point: str) -> dict[str, float]:
        samples = generator.sample(o.curve_samples, device_generator(device, spec.seed, point))
        return {"nll_oracle": oracle.nll(samples)}

    task = Task(
        name="oracle",
        vocab=o.vocab,
        length=o.length,
        train=train.cpu(),
        valid=valid.cpu(),
        mle_epochs=o.mle_epochs,
        discriminator=o.discriminator,
        schedule=o.schedule,
        curve=curve,
        identity={"oracle": oracle_fingerprint(oracle), "curve_samples": o.curve_samples},
    )
    return task, oracle


def oracle_fingerprint(oracle: SeqLSTM) -> str:
    return data_hash(*(p.detach() for p in oracle.parameters()))


def run_oracle_experiment(
    spec: SeqGANSpec, out_dir: Path, speed_file: Path | None = None
) -> dict[str, Any]:
    """Train random -> MLE -> SeqGAN against the oracle; write out_dir/{metrics.json,
    curve.csv} and the speed (out_dir/speed.json, or `speed_file`); metrics.json's content.
    Resumes from out_dir/work after a kill; on SIGTERM checkpoints and exits with
    REQUEUE_EXIT_CODE."""
    holder: dict[str, SeqLSTM] = {}

    def make(device: torch.device) -> Task:
        task, holder["oracle"] = oracle_task(spec, device)
        return task

    def score(trained: Trained, device: torch.device) -> dict[str, Any]:
        return oracle_metrics(spec, holder["oracle"], trained, device)

    return run_experiment(spec, make, score, out_dir, speed_file)


def oracle_metrics(
    spec: SeqGANSpec, oracle: SeqLSTM, trained: Trained, device: torch.device
) -> dict[str, Any]:
    """NLL-oracle of `nll_samples` sequences of each generator, and of the oracle's own."""
    o = spec.oracle
    rows = {}
    for name in ("random", "mle", "seqgan"):
        model = getattr(trained, name)
        samples = model.sample(o.nll_samples, device_generator(device, spec.seed, "final", name))
        rows[name] = {"nll_oracle": oracle.nll(samples)}
    own = oracle.sample(o.nll_samples, device_generator(device, o.seed, "oracle-own"))
    return {
        "rows": rows,
        "oracle": {
            "source": o.weights or f"seeded N(0, {o.init_std}) draw (oracle seed {o.seed})",
            "nll_of_its_own_samples": oracle.nll(own),
            "vocab": o.vocab,
            "length": o.length,
        },
        "paper_table_1": PAPER_TABLE_1,
        "nll_samples": o.nll_samples,
    }
