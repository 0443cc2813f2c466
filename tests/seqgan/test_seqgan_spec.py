"""The `seqgan` group: both conf files build the spec; the MLE pre-training spec is the paper's
optimizer on top of the `train` group; broken values fail naming the conf."""

from __future__ import annotations

import pytest
import yaml

from midilm.common.spec import ConfigError
from midilm.specs.seqgan import seqgan_spec
from tests.conftest import REPO_ROOT


def _params(option: str) -> dict:
    conf = REPO_ROOT / "conf"
    return {
        "seed": 1,
        "train": yaml.safe_load((conf / "train" / "default.yaml").read_text()),
        "seqgan": yaml.safe_load((conf / "seqgan" / f"{option}.yaml").read_text()),
    }


@pytest.mark.parametrize("option", ["default", "thesis"])
def test_both_options_build_the_spec(option: str) -> None:
    spec = seqgan_spec(_params(option))
    mle = spec.mle_for(spec.oracle)
    assert (mle.lr, mle.grad_clip, mle.schedule, mle.weight_decay) == (0.01, 5.0, "constant", 0.0)
    assert (mle.strategy, mle.precision, mle.epochs) == ("single", "fp32", spec.oracle.mle_epochs)
    assert spec.generator.init_std == 0.1 and spec.oracle.init_std == 1.0
    assert spec.music.vocab == 89 and spec.music.rest == 88
    assert max(spec.oracle.discriminator.kernel_sizes) <= spec.oracle.length
    assert max(spec.music.discriminator.kernel_sizes) <= spec.music.length


def test_thesis_is_the_paper() -> None:
    spec = seqgan_spec(_params("thesis"))
    s, o = spec.oracle.schedule, spec.oracle
    assert (o.vocab, o.length, o.train_sequences, o.nll_samples) == (5000, 20, 10_000, 100_000)
    assert (s.d_pretrain_rounds, s.d_epochs, s.negatives) == (50, 3, None)
    assert (s.adversarial_batches, s.g_batch_size, s.rollouts, s.d_rounds) == (200, 64, 16, 5)
    assert sum(o.discriminator.kernel_counts) == 1720
    assert spec.music.discriminator.kernel_sizes[-3:] == (16, 24, 32)


def test_broken_values_name_the_conf() -> None:
    params = _params("default")
    params["seqgan"]["oracle"]["discriminator"]["kernel_counts"].pop()
    with pytest.raises(ConfigError, match=r"kernel_sizes .* and kernel_counts"):
        seqgan_spec(params)
    params = _params("default")
    params["seqgan"]["music"]["schedule"]["rollout_update_rate"] = 1.0
    with pytest.raises(ConfigError, match=r"rollout_update_rate must be in \[0, 1\)"):
        seqgan_spec(params)
    params = _params("default")
    params["seqgan"]["oracle"]["vocabulary"] = 10
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['vocabulary'\]"):
        seqgan_spec(params)
