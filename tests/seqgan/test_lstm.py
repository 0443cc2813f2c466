"""The reference LSTM (generator and oracle): equations, sampling, the oracle file and NLL."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from midilm.seqgan.lstm import REFERENCE_ORDER, SeqLSTM, sample_categorical
from midilm.seqgan.oracle import build_oracle, read_oracle_npz, save_oracle_npz
from midilm.specs.seqgan import SeqGANSpec


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_two_token_step_equals_a_hand_computation() -> None:
    """Vocab 3, embedding 1, hidden 1: every product is a scalar, computed here by hand."""
    model = SeqLSTM(3, 1, 1, 2, start_token=0, init_std=0.1)
    w = {
        "embedding": [[0.5], [-1.0], [2.0]],
        "Wi": [[0.3]], "Ui": [[0.2]], "bi": [0.1],
        "Wf": [[-0.4]], "Uf": [[0.5]], "bf": [0.2],
        "Wog": [[0.6]], "Uog": [[-0.3]], "bog": [0.0],
        "Wc": [[1.0]], "Uc": [[0.7]], "bc": [-0.1],
        "Wo": [[1.0, -2.0, 0.5]], "bo": [0.1, 0.0, -0.2],
    }  # fmt: skip
    model.load_arrays({k: np.array(v, dtype=np.float32) for k, v in w.items()}, "hand")

    def step(x: float, h: float, c: float) -> tuple[float, float]:
        i = _sigmoid(x * 0.3 + h * 0.2 + 0.1)
        f = _sigmoid(x * -0.4 + h * 0.5 + 0.2)
        o = _sigmoid(x * 0.6 + h * -0.3 + 0.0)
        candidate = math.tanh(x * 1.0 + h * 0.7 - 0.1)
        c = f * c + i * candidate
        return o * math.tanh(c), c

    # the sequence [2, 1]: read the start token (0), predict 2; read 2, predict 1
    h1, c1 = step(0.5, 0.0, 0.0)
    h2, _ = step(2.0, h1, c1)
    expected = [[h * wo + bo for wo, bo in zip([1.0, -2.0, 0.5], [0.1, 0.0, -0.2], strict=True)]
                for h in (h1, h2)]  # fmt: skip
    tokens = torch.tensor([[2, 1]])
    logits = model(model.inputs_of(tokens)).logits[0]
    assert logits.flatten().tolist() == pytest.approx([*expected[0], *expected[1]], abs=1e-6)

    def log_softmax(row: list[float], k: int) -> float:
        return row[k] - math.log(sum(math.exp(v) for v in row))

    log_p = model.token_log_probs(tokens)[0].tolist()
    assert log_p == pytest.approx([log_softmax(expected[0], 2), log_softmax(expected[1], 1)])


def test_reference_arrays_round_trip_and_bad_files_are_named(tmp_path: Path) -> None:
    model = SeqLSTM(7, 3, 4, 5, 0, 1.0, torch.Generator().manual_seed(0))
    path = tmp_path / "oracle.npz"
    save_oracle_npz(model, path)
    arrays = read_oracle_npz(path)
    assert list(arrays) == list(REFERENCE_ORDER)
    assert arrays["Wi"].shape == (3, 4) and arrays["Wo"].shape == (4, 7)
    other = SeqLSTM(7, 3, 4, 5, 0, 1.0, torch.Generator().manual_seed(1))
    other.load_arrays(arrays, str(path))
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters(), strict=True)
    )

    with pytest.raises(ValueError, match=r"missing \['bo'\]"):
        other.load_arrays({k: v for k, v in arrays.items() if k != "bo"}, "x.npz")
    with pytest.raises(ValueError, match=r"'Uf' has shape \(4, 3\), expected \(4, 4\)"):
        other.load_arrays({**arrays, "Uf": np.zeros((4, 3), np.float32)}, "x.npz")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{**arrays, "bo": np.array([object()] * 7, dtype=object)})
    with pytest.raises(ValueError, match=r"not a plain \.npz"):
        read_oracle_npz(pickled)
    with pytest.raises(FileNotFoundError, match=r"seqgan\.oracle\.weights"):
        read_oracle_npz(tmp_path / "absent.npz")


def test_oracle_from_npz_is_the_file_not_the_seeded_draw(
    tmp_path: Path, tiny_spec: SeqGANSpec
) -> None:
    o = tiny_spec.oracle
    source = SeqLSTM(
        o.vocab, o.embedding, o.hidden, o.length, 0, 1.0, torch.Generator().manual_seed(5)
    )
    save_oracle_npz(source, tmp_path / "o.npz")
    loaded = build_oracle(
        dataclasses.replace(o, weights=str(tmp_path / "o.npz")), 0, torch.device("cpu")
    )
    seeded = build_oracle(o, 0, torch.device("cpu"))
    assert torch.equal(loaded.Wo, source.Wo) and not torch.equal(seeded.Wo, source.Wo)


def test_inverse_cdf_sampling_follows_the_softmax() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0, 1.0]]).repeat(40000, 1)
    tokens = sample_categorical(logits, torch.Generator().manual_seed(0))
    frequency = torch.bincount(tokens, minlength=4).double() / len(tokens)
    assert frequency.tolist() == pytest.approx(
        torch.softmax(logits[0].double(), 0).tolist(), abs=0.01
    )
    assert tokens.max() < 4


def test_the_oracle_is_likelier_on_its_own_samples_than_on_uniform_sequences() -> None:
    oracle = SeqLSTM(200, 32, 32, 20, 0, 1.0, torch.Generator().manual_seed(3))
    own = oracle.sample(256, torch.Generator().manual_seed(4))
    uniform = torch.randint(0, 200, (256, 20), generator=torch.Generator().manual_seed(5))
    own_nll, uniform_nll = oracle.nll(own), oracle.nll(uniform)
    assert own_nll < uniform_nll - 1.0
    # per-token mean: the likelihood of each sampled token, summed over positions, / tokens
    assert own_nll == pytest.approx(float(-oracle.token_log_probs(own).detach().mean()), rel=1e-5)
