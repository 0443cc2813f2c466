"""The one way a seed is derived from the run seed: anything seeded per piece, copy, sample or
rank draws from `derive_seed(seed, *what)`, independent of order, workers and processes."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *parts: object) -> int:
    """A 64-bit seed from the run seed and the parts naming what is seeded (e.g. a piece id and
    a copy index): SHA-256 of the parts joined by a unit separator."""
    text = "\x1f".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def seeded_order(seed: int, ids: list[str]) -> list[str]:
    """`ids` in a seeded order that does not depend on their input order (a seeded sample is a
    prefix of it)."""
    return sorted(ids, key=lambda i: (derive_seed(seed, i), i))
