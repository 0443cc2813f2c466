"""The split rule: one visible function of the content hash, validated ratios."""

from __future__ import annotations

import hashlib

import pytest

from midilm.datasets.split import hash_fraction, split_of, validate_ratios

RATIOS = {"train": 0.8, "valid": 0.1, "test": 0.1}


def test_rule_reads_the_leading_hex_digits() -> None:
    assert hash_fraction("00000000" + "f" * 56) == 0.0
    assert split_of("00000000" + "f" * 56, RATIOS) == "train"
    assert split_of("e0000000" + "0" * 56, RATIOS) == "valid"  # 0.875
    assert split_of("ffffffff" + "0" * 56, RATIOS) == "test"


def test_split_is_deterministic_and_follows_the_ratios() -> None:
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(5000)]
    first = [split_of(h, RATIOS) for h in hashes]
    assert first == [split_of(h, dict(reversed(RATIOS.items()))) for h in hashes]
    share = {name: first.count(name) / len(first) for name in RATIOS}
    assert share == pytest.approx(RATIOS, abs=0.02)


@pytest.mark.parametrize(
    "ratios, message",
    [
        ({"train": 0.8, "valid": 0.1}, "names must be exactly"),
        ({"train": 0.8, "val": 0.1, "test": 0.1}, "names must be exactly"),
        ({"train": 0.8, "valid": 0.3, "test": 0.1}, "sum to 1"),
        ({"train": 1.1, "valid": -0.1, "test": 0.0}, "sum to 1"),
    ],
)
def test_bad_ratios_fail_with_the_fix(ratios: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_ratios(ratios)
