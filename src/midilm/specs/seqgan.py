"""The `seqgan` group (conf/seqgan/*.yaml): SeqGAN's generator, discriminator, Algorithm 1's
schedule, the synthetic oracle experiment and the music task.

The generator's MLE pre-training is a `TrainSpec`: the `train` group with `seqgan.mle` on top
(Adam lr 0.01 without weight decay, gradient clip 5.0, constant rate), each task setting its own
number of epochs. The adversarial generator step uses the same optimizer settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from midilm.common.spec import ConfigError, from_mapping, section
from midilm.specs.train import TrainSpec

WHERE = "conf/seqgan/*.yaml"


@dataclass(frozen=True)
class GeneratorSpec:
    """The reference LSTM generator (also the roll-out network)."""

    embedding: int
    hidden: int
    init_std: float  # N(0, init_std) for every weight
    start_token: int


@dataclass(frozen=True)
class DiscriminatorSpec:
    """The CNN discriminator: one convolution per kernel size, `kernel_counts` filters each."""

    embedding: int
    kernel_sizes: tuple[int, ...]
    kernel_counts: tuple[int, ...]
    dropout_keep: float
    l2: float  # on the output layer only
    lr: float  # Adam
    batch_size: int

    def __post_init__(self) -> None:
        if len(self.kernel_sizes) != len(self.kernel_counts) or not self.kernel_sizes:
            raise ConfigError(
                f"{WHERE}: discriminator kernel_sizes {list(self.kernel_sizes)} and kernel_counts "
                f"{list(self.kernel_counts)} must be non-empty lists of the same length"
            )
        if not 0.0 < self.dropout_keep <= 1.0:
            raise ConfigError(f"{WHERE}: discriminator dropout_keep must be in (0, 1]")


@dataclass(frozen=True)
class ScheduleSpec:
    """Algorithm 1 after MLE pre-training: discriminator pre-training, then adversarial batches
    of `g_steps` policy-gradient steps and `d_rounds` x (fresh negatives, `d_epochs` epochs)."""

    curve_every_epochs: int  # NLL-oracle / BLEU point every n MLE epochs
    d_pretrain_rounds: int  # 50 in the paper
    d_epochs: int  # 3
    # fresh negatives per round, null: as many as training sequences (the reference); fewer
    # (a budget) pair them with as many real sequences drawn from the training set
    negatives: int | None
    adversarial_batches: int  # 200 in the paper (800 in the 2016 code)
    g_steps: int  # 1
    g_batch_size: int  # 64
    rollouts: int  # 16 Monte-Carlo completions per prefix
    rollout_update_rate: float  # 0.8 as stated; 0 = the reference code's effective (live) policy
    d_rounds: int  # 5
    curve_every_batches: int  # a curve point every n adversarial batches (and the last)
    rollout_rows: int  # sequences advanced together in one roll-out chunk (memory bound)
    score_tokens: int  # tokens the discriminator scores per forward (memory bound)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rollout_update_rate < 1.0:
            raise ConfigError(f"{WHERE}: rollout_update_rate must be in [0, 1) (0: live policy)")


@dataclass(frozen=True)
class OracleSpec:
    """The synthetic experiment: a random LSTM oracle and NLL-oracle."""

    vocab: int
    embedding: int
    hidden: int
    length: int
    init_std: float  # N(0, 1) in the paper
    seed: int  # the oracle's weights (independent of the run seed)
    weights: str | None  # .npz of the reference oracle's 15 arrays; null: the seeded draw
    train_sequences: int  # 10,000
    valid_sequences: int  # held-out oracle samples for the MLE loop's validation loss
    nll_samples: int  # generated sequences for the final NLL-oracle (100,000)
    curve_samples: int  # per learning-curve point (the reference code: 10,000)
    mle_epochs: float
    discriminator: DiscriminatorSpec
    schedule: ScheduleSpec


@dataclass(frozen=True)
class MusicSpec:
    """The music task: melodies sampled every `step_seconds` into `keys` piano keys + a rest."""

    datasets: tuple[str, ...]  # manifest `dataset` values whose pieces are used
    step_seconds: float  # 0.4
    length: int  # 32
    stride: int  # hop between windows of one melody (= length: no overlap)
    lowest_pitch: int  # MIDI pitch of key 0 (21 = A0)
    keys: int  # 88
    eval_samples: int  # generated sequences scored for the table (BLEU-4, MSE)
    curve_samples: int  # per learning-curve point
    midi_samples: int  # generated sequences written as MIDI files
    mle_epochs: float
    discriminator: DiscriminatorSpec
    schedule: ScheduleSpec

    @property
    def rest(self) -> int:
        """The rest token: the id after the keys."""
        return self.keys

    @property
    def vocab(self) -> int:
        return self.keys + 1


@dataclass(frozen=True)
class SeqGANSpec:
    seed: int
    generator: GeneratorSpec
    mle: TrainSpec  # epochs set per task (`mle_for`)
    checkpoint_units: int  # adversarial-phase units (g-step, discriminator round) per checkpoint
    oracle: OracleSpec
    music: MusicSpec

    def mle_for(self, task: OracleSpec | MusicSpec) -> TrainSpec:
        """The MLE pre-training spec of a task: its epochs over its training sequences."""
        return dataclasses.replace(self.mle, epochs=task.mle_epochs)


def seqgan_spec(params: Mapping[str, Any]) -> SeqGANSpec:
    """`seqgan` of params.yaml; its `mle` block goes on top of the `train` group."""
    group = dict(section(params, "seqgan", where=WHERE))
    if "mle" not in group:
        raise ConfigError(f"{WHERE}: missing key(s) ['mle'] (SeqGANSpec)")
    train = section(params, "train", where="conf/train/default.yaml")
    mle = from_mapping(
        TrainSpec, {**train, **group.pop("mle")}, "conf/train/default.yaml + seqgan.mle"
    )
    if mle.strategy != "single" or mle.grad_accum != 1:
        raise ConfigError(f"{WHERE}: seqgan.mle must train with strategy single, grad_accum 1")
    return from_mapping(SeqGANSpec, group, WHERE, seed=params["seed"], mle=mle)
