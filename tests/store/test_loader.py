"""Training windows: seeded global order, full coverage of the stream, exact shifted targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from midilm.store.binidx import BinIdxDataset, BinIdxWriter
from midilm.store.loader import TokenWindows, sequential_windows


@pytest.fixture()
def stream(tmp_path: Path) -> BinIdxDataset:
    """1,001 tokens whose value is their position, in documents of uneven length."""
    tokens = np.arange(1001)
    with BinIdxWriter(tmp_path / "train", np.uint16) as writer:
        for doc in np.split(tokens, [7, 300, 301, 640]):
            writer.add_document(doc)
    return BinIdxDataset(tmp_path / "train")


def test_windows_cover_the_stream_in_a_seeded_order(stream: BinIdxDataset) -> None:
    windows = TokenWindows(stream, context=64, seed=3)
    assert len(windows) == 1000 // 64
    starts = [int(windows[i][0][0]) for i in range(len(windows))]
    assert sorted(starts) == list(range(0, 15 * 64, 64))  # every window once
    assert starts != sorted(starts)  # shuffled globally
    assert starts == [int(TokenWindows(stream, 64, 3)[i][0][0]) for i in range(15)]
    assert starts != [int(TokenWindows(stream, 64, 4)[i][0][0]) for i in range(15)]
    windows.set_epoch(1)
    assert [int(windows[i][0][0]) for i in range(15)] != starts


def test_targets_are_inputs_shifted_by_one(stream: BinIdxDataset) -> None:
    windows = TokenWindows(stream, context=64, seed=0)
    x, y = windows[5]
    assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape == (64,)
    assert torch.equal(y, x + 1)
    xb, yb = windows.batch([5, 0, 14])
    assert xb.shape == (3, 64) and torch.equal(xb[0], x) and torch.equal(yb, xb + 1)


def test_sequential_windows_are_deterministic_and_non_overlapping(stream: BinIdxDataset) -> None:
    windows = list(sequential_windows(stream, 100))
    assert len(windows) == 10
    assert [int(x[0]) for x, _ in windows] == list(range(0, 1000, 100))
    assert all(torch.equal(y, x + 1) for x, y in windows)
    batches = list(sequential_windows(stream, 100, batch_size=4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b[0] for b in batches]), torch.stack([x for x, _ in windows]))


def test_too_short_a_stream_says_what_to_do(stream: BinIdxDataset) -> None:
    with pytest.raises(ValueError, match=r"lower model\.context"):
        TokenWindows(stream, context=1001, seed=0)


def test_magic_prime_is_2_mod_3_and_strides_a_full_cycle() -> None:
    from midilm.store.loader import is_prime, magic_prime, window_order

    for n in (15, 100, 1000, 4096):
        p = magic_prime(n)
        assert is_prime(p) and p % 3 == 2 and n % p and abs(p - 0.618 * n) < max(0.05 * n, 3)
        order = window_order(n, "prime_stride", seed=1, epoch=0)
        assert sorted(order.tolist()) == list(range(n))
        assert ((order[1:] - order[:-1]) % n == p).all()


def test_prime_stride_order_covers_every_window(stream: BinIdxDataset) -> None:
    windows = TokenWindows(stream, context=64, seed=3, order="prime_stride")
    starts = [int(windows[i][0][0]) for i in range(len(windows))]
    assert sorted(starts) == list(range(0, 15 * 64, 64)) and starts != sorted(starts)


def test_padded_layout_never_crosses_a_document(stream: BinIdxDataset) -> None:
    windows = TokenWindows(stream, context=64, seed=0, layout="padded", pad_id=9999)
    docs = [stream[i] for i in range(len(stream))]
    assert len(windows) == sum(-(-(len(d) - 1) // 64) for d in docs if len(d) > 1)
    seen = set()
    for i in range(len(windows)):
        inputs, targets = windows[i]
        real = inputs != 9999
        doc = next(d for d in docs if int(inputs[0]) in d)
        assert set(inputs[real].tolist()) <= set(doc.tolist())
        assert (targets[real] == inputs[real] + 1).all() and (targets[~real] == -100).all()
        seen.update(inputs[real].tolist())
    assert seen == {int(t) for d in docs for t in d[:-1]}  # every next-token target once
    batch_in, batch_tg = windows.batch([0, 1, 2])
    assert batch_in.shape == (3, 64) and batch_tg.shape == (3, 64)
