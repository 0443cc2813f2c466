"""The `datasets` stage on a hostile folder (tests/hostile/corpus.py): the run finishes, every
input is kept, quarantined or skipped with the reason its case names, none vanishes, no good
file is lost, no worker crashes and none hangs. Writes and prints the summary table."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from midilm.common.paths import Layout
from midilm.datasets.inputs import display_text
from tests.datasets.params import make_params
from tests.hostile.corpus import Case, build
from tests.hostile.unprivileged import permissions_enforced, run

RUNNER = Path(__file__).with_name("run_stage.py")
STATUSES = ("kept", "quarantined", "skipped")


def observed(layout: Layout) -> dict[str, tuple[str, str]]:
    """{input: (status, reason)}: kept if any of its pieces is, else quarantined, else skipped."""
    manifest = pd.read_parquet(layout.raw_manifest)
    seen: dict[str, tuple[str, str]] = {}
    for name, status in (("skipped_report.parquet", "skipped"),
                         ("quarantine_report.parquet", "quarantined")):  # fmt: skip
        report = pd.read_parquet(layout.raw_dir / name)
        for path, reason in zip(report["input"], report["reason"], strict=True):
            seen[path] = (status, reason)
    for path in manifest["input"]:
        seen[path] = ("kept", "")
    return seen


def summary_table(cases: list[Case], seen: dict[str, tuple[str, str]], inputs: dict[Case, str],
                  reasons: Counter[str]) -> str:  # fmt: skip
    """One row per case group and a total: cases, kept, quarantined, skipped, crashes, hangs."""
    rows = []
    for group in [*dict.fromkeys(c.group for c in cases), "total"]:
        mine = [c for c in cases if group in (c.group, "total")]
        counts = Counter(seen[inputs[c]][0] for c in mine)
        crashes = sum(seen[inputs[c]][1] == "crash" for c in mine)
        hangs = sum(seen[inputs[c]][1] == "timeout" for c in mine)
        rows.append([group, len(mine), *(counts[s] for s in STATUSES), crashes, hangs])
    head = ["group", "cases", *STATUSES, "crashes", "hangs"]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(str(v).rjust(w) for v, w in zip(r, widths, strict=True))
             for r in [head, *rows]]  # fmt: skip
    lines.append("reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
    return "\n".join(lines)


@pytest.mark.timeout(600)
def test_hostile_folder_loses_nothing_and_stops_nothing(
    tmp_path: Path, shared_datasets: Path
) -> None:
    enforced = permissions_enforced(tmp_path)
    root = tmp_path / "corpus"
    cases = build(root, shared_datasets, tmp_path / "outside", lock=enforced)
    params = make_params(folders={"hostile": {"path": str(root), "license": "test"}},
                         timeout_s=30)  # fmt: skip
    params_file = tmp_path / "params.json"
    params_file.write_text(json.dumps({"dataset": dict(params.dataset)}, default=_plain))
    out = tmp_path / "out"
    env_note = "unreadable cases ran" if enforced else "unreadable cases left out (no cap drop)"
    result = run([sys.executable, str(RUNNER), str(params_file), str(out)], timeout=500)
    assert result.returncode == 0, result.stderr[-4000:]  # no input stopped the run

    layout = Layout(root=out)
    seen = observed(layout)
    inputs = {c: display_text(os.fsdecode(os.fsencode(root) + b"/" + c.rel)) for c in cases}
    summary = json.loads((layout.raw_dir / "summary.json").read_text())["datasets"]["hostile"]
    reasons = Counter(summary["by_reason"]) + Counter(summary["skipped_by_reason"])
    table = summary_table(cases, seen, inputs, reasons)
    (tmp_path / "hostile_summary.txt").write_text(table + f"\n{env_note}\n")
    print(f"\n{table}\n{env_note}")

    missing = [inputs[c] for c in cases if inputs[c] not in seen]
    assert not missing, f"inputs that vanished: {missing}"
    extra = sorted(set(seen) - set(inputs.values()))
    assert not extra, f"outcomes for paths no case names: {extra}"
    wrong = {inputs[c]: (seen[inputs[c]], (c.expect, c.reason)) for c in cases
             if seen[inputs[c]] != (c.expect, c.reason)}  # fmt: skip
    assert not wrong, f"got, expected: {json.dumps(wrong, indent=1)}"
    counts = summary["inputs_by_status"]
    assert summary["inputs"] == len(cases) == sum(counts.values())
    assert counts == dict(Counter(c.expect for c in cases))
    assert not {"crash", "timeout"} & set(reasons)
    assert len(cases) >= 130


def _plain(value: object) -> object:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value, resolve=True)  # type: ignore[arg-type]


def test_links_all_follows_links_out_of_the_folder(tmp_path: Path) -> None:
    """`dataset.links: all`: a link to a good file elsewhere is read, a link to a device is
    still never opened (skipped as not a regular file), a loop still ends."""
    from midilm.datasets.stage import run_datasets
    from tests.hostile import midi_bytes as mb

    outside, root = tmp_path / "outside", tmp_path / "linked"
    (outside / "sub").mkdir(parents=True)
    root.mkdir()
    (outside / "good.mid").write_bytes(mb.song())
    (outside / "sub" / "deep.mid").write_bytes(mb.song(mb.tempo(400_000)))
    for name, target in [("good.mid", outside / "good.mid"), ("zero.mid", "/dev/zero"),
                         ("dir", outside / "sub"), ("loop", root)]:  # fmt: skip
        (root / name).symlink_to(target)
    layout = Layout(root=tmp_path / "out")
    params = make_params(folders={"l": {"path": str(root)}}, links="all")
    run_datasets(params, layout)
    kept = pd.read_parquet(layout.raw_manifest)
    skipped = pd.read_parquet(layout.raw_dir / "skipped_report.parquet")
    assert sorted(kept["id"]) == ["l/dir__deep", "l/good"]
    assert dict(zip(skipped["input"], skipped["reason"], strict=True)) == {
        str(root / "zero.mid"): "not_regular_file",
        str(root / "loop"): "already_walked",
    }


def test_a_piece_past_the_memory_bound_is_too_large_and_the_pool_goes_on(tmp_path: Path) -> None:
    """500,001 notes need ~100 MiB in symusic: with 32 MiB per piece that piece is `too_large`,
    the small one after it in the same worker is kept."""
    import functools

    from midilm.datasets.pool import TimeoutPool
    from midilm.datasets.sources import PieceTask
    from midilm.datasets.stage import _failure_result
    from midilm.datasets.worker import process_piece
    from tests.datasets.params import make_spec
    from tests.hostile import midi_bytes as mb

    big, small = tmp_path / "big.mid", tmp_path / "small.mid"
    big.write_bytes(mb.header(0, 1) + mb.track(mb.running_notes(500_001, length=1)))
    small.write_bytes(mb.song())
    tasks = [PieceTask("m", p.stem, "folder", p.name, "", str(p)) for p in (big, small)]
    filters = make_spec(filters={"max_notes": 10**7}).filters
    pool = TimeoutPool(functools.partial(process_piece, filters=filters), _failure_result,
                       workers=1, timeout_s=60, memory_mb=32)  # fmt: skip
    first, second = pool.map(tasks)
    assert (first.reason, second.kept) == ("too_large", True), first.detail
    assert "worker_memory_mb" in first.detail
