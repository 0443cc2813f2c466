"""Every input of the chosen dataset: each enabled source and folder listed by its kind's lister,
the optional selection applied, in a deterministic order."""

from __future__ import annotations

from collections import Counter

from midilm.datasets.listing import registry_tasks
from midilm.datasets.sources import (
    Listing,
    ReadRules,
    abc_tasks,
    chorale_tasks,
    folder_tasks,
    select,
)
from midilm.specs.dataset import DatasetSpec

SOURCE_LISTERS = {  # dataset.sources kinds (midilm.specs.dataset.SOURCE_KINDS)
    "music21_chorales": chorale_tasks,
    "music21_abc": abc_tasks,
    "registry": registry_tasks,
}


def collect_tasks(spec: DatasetSpec) -> Listing:
    """Every piece of every enabled source and folder, in a deterministic order, and every
    input that gives none."""
    rules = ReadRules.of(spec)
    listing = Listing()
    for name, cfg in sorted(spec.sources.items()):
        if cfg.enabled:
            listing.extend(
                select(
                    SOURCE_LISTERS[cfg.kind](name, cfg, rules),
                    name,
                    cfg,
                    spec.max_pieces_per_source,
                )
            )
    for name, cfg in sorted(spec.folders.items()):
        if cfg.enabled:
            listing.extend(
                select(folder_tasks(name, cfg, rules), name, cfg, spec.max_pieces_per_source)
            )
    dupes = sorted(i for i, n in Counter(t.id for t in listing.tasks).items() if n > 1)[:5]
    if dupes:  # a bug in a source's naming, not the user's: fail before the work starts
        raise ValueError(f"duplicate piece ids {dupes}; piece names must be unique per dataset")
    return listing
