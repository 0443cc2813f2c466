"""Plan a listening test: gather the stimuli, prepare their audio, draw each participant's session.

A test is a folder: `test.json` (stimuli, sessions, the secret behind ids and tokens),
`plan.csv` (the stimulus list per participant, unblinded: for the experimenter), `links.csv`
(each participant's link), `audio/<opaque id>.mp3` and, once served, `ratings.sqlite`.

Stimuli: every model's rendered samples and the real test pieces they continued
(outputs/audio/<key>/audio.json), plus degraded anchors made from real pieces. Each gets an opaque
id (an HMAC of the test's secret), so nothing a participant sees names a model. Sessions: for each
participant, `samples_per_model` clips of every model, `real_per_participant` real pieces and
`anchors_per_participant` anchors, chosen by rotating through a seeded shuffle of each condition
(balanced coverage across participants), then put in a seeded random order. The draw depends only
on (seed, participant, stimuli), so every participant hears every condition: the paired test of
T8 needs that.
"""

from __future__ import annotations

import csv
import io
import random
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from midilm.common.hashing import sha256_file
from midilm.common.io import atomic_dir, read_json, write_json_atomic, write_text_atomic
from midilm.common.logging import get_logger, progress_disabled
from midilm.common.paths import Layout
from midilm.listen import audio
from midilm.listen.protocol import ANCHOR, REAL
from midilm.listen.testdir import (
    AUDIO_DIR,
    LINKS_FILE,
    PLAN_FILE,
    TEST_FILE,
    ListeningTest,
    Stimulus,
    opaque_id,
)
from midilm.specs.listen import ListenSpec

log = get_logger(__name__)


@dataclass(frozen=True)
class Source:
    """Where a stimulus comes from: condition (model key, real or anchor), item and audio file."""

    condition: str
    item: str
    path: str  # repository-relative audio file (FLAC preferred: decoded losslessly)


def participant_ids(count: int) -> list[str]:
    return [f"p{index + 1:03d}" for index in range(count)]


def collect_sources(layout: Layout, models: Sequence[str]) -> tuple[list[Source], list[str]]:
    """(sources, problems): each model's samples and the real pieces (once each, by id).

    A model without audio.json, or an item whose audio file is missing, is left out and named in
    `problems`; the test still runs on the rest.
    """
    sources: list[Source] = []
    reals: dict[str, Source] = {}
    problems: list[str] = []
    for key in models:
        index = layout.root / "outputs" / "audio" / key / "audio.json"
        if not index.is_file():
            problems.append(
                f"{index}: missing, model {key} left out (run `dvc repro render@{key}`)"
            )
            continue
        try:
            items = read_json(index)["items"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"{index}: unreadable ({exc}), model {key} left out")
            continue
        for number, item in enumerate(items):
            sample = _audio_path(layout, item.get("sample"))
            if sample is None:
                problems.append(f"{index}: item {number} has no audio file on disk; left out")
                continue
            sources.append(Source(key, str(item.get("id") or f"item_{number:03d}"), sample))
            reference = item.get("reference") or {}
            ref_audio = _audio_path(layout, reference)
            if ref_audio is not None and reference.get("id") is not None:
                reals.setdefault(
                    str(reference["id"]), Source(REAL, str(reference["id"]), ref_audio)
                )
    sources += [reals[k] for k in sorted(reals)]
    return sources, problems


def draw_sessions(
    stimuli: Sequence[Stimulus], participants: Sequence[str], spec: ListenSpec
) -> dict[str, tuple[str, ...]]:
    """Each participant's stimulus ids in play order (module docstring); pure and seeded."""
    by_condition: dict[str, list[Stimulus]] = {}
    for stimulus in stimuli:
        by_condition.setdefault(stimulus.condition, []).append(stimulus)
    wanted: dict[str, int] = {}
    for condition in by_condition:
        if condition == REAL:
            wanted[condition] = spec.real_per_participant
        elif condition == ANCHOR:
            wanted[condition] = spec.anchors_per_participant
        else:
            wanted[condition] = spec.samples_per_model
    pools = {}
    for condition, group in sorted(by_condition.items()):
        ordered = sorted(group, key=lambda s: s.item)
        random.Random(f"{spec.seed}/pool/{condition}").shuffle(ordered)
        pools[condition] = ordered
    sessions = {}
    for index, participant in enumerate(participants):
        chosen: list[str] = []
        for condition, pool in pools.items():
            take = min(wanted[condition], len(pool))
            chosen += [pool[(index * take + j) % len(pool)].id for j in range(take)]
        random.Random(f"{spec.seed}/order/{participant}").shuffle(chosen)
        sessions[participant] = tuple(chosen)
    return sessions


def create_test(
    root: Path,
    test_dir: Path,
    models: Sequence[str],
    participants: int,
    spec: ListenSpec,
    secret: str | None = None,
) -> ListeningTest:
    """Prepare the test folder `test_dir` from the rendered audio under `root` (see module doc).

    Refuses an existing test folder: its participants may already have rated its stimuli.
    """
    test_dir = Path(test_dir)
    if (test_dir / TEST_FILE).exists():
        raise FileExistsError(
            f"{test_dir}: a listening test is already planned there (its ratings must keep "
            "their stimuli); choose a new --dir, or delete the folder to start over."
        )
    if participants < 1:
        raise ValueError(f"participants must be >= 1, got {participants}")
    reserved = sorted({REAL, ANCHOR} & set(models))
    if reserved:
        raise ValueError(f"model keys {reserved} clash with the test's conditions; rename them")
    layout = Layout(Path(root))
    sources, problems = collect_sources(layout, models)
    for problem in problems:
        log.warning("listen plan: %s", problem)
    reals = [s for s in sources if s.condition == REAL]
    if not reals:
        raise ValueError(
            f"no rendered real pieces under {layout.root / 'outputs' / 'audio'}: the test needs "
            "the reference pieces as its hidden reference; run the render stages first."
        )
    if not any(s.condition not in (REAL, ANCHOR) for s in sources):
        raise ValueError("no model has rendered samples; run the render stages first.")
    anchors = [Source(ANCHOR, r.item, r.path) for r in reals[: spec.anchors]]
    secret = secret or secrets.token_hex(16)
    stimuli: list[Stimulus] = []
    with atomic_dir(test_dir) as tmp:
        (tmp / AUDIO_DIR).mkdir()
        bar = tqdm(
            [*sources, *anchors], desc="listen plan", unit="clip", disable=progress_disabled()
        )
        for source in bar:
            stimuli.append(_prepare(layout, tmp, source, secret, spec))
        names = participant_ids(participants)
        sessions = draw_sessions(stimuli, names, spec)
        test = ListeningTest(test_dir.name, secret, spec.seed, {s.id: s for s in stimuli}, sessions)
        write_json_atomic(
            tmp / TEST_FILE,
            {
                "name": test.name,
                "secret": secret,
                "spec": asdict(spec),
                "stimuli": [asdict(s) for s in stimuli],
                "sessions": {p: list(ids) for p, ids in sessions.items()},
                "left_out": problems,
            },
        )
        write_text_atomic(tmp / PLAN_FILE, plan_csv(test))
        write_text_atomic(tmp / LINKS_FILE, links_csv(test))
    log.info(
        "listen plan: %d stimuli, %d participants x %d clips in %s",
        len(stimuli),
        participants,
        len(next(iter(sessions.values()))),
        test_dir,
    )
    return test


def plan_csv(test: ListeningTest) -> str:
    """participant, position, stimulus, condition, item, seconds: one row per planned clip."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["participant", "position", "stimulus", "condition", "item", "seconds"])
    for participant, ids in test.sessions.items():
        for position, stimulus_id in enumerate(ids):
            s = test.stimuli[stimulus_id]
            writer.writerow([participant, position, s.id, s.condition, s.item, f"{s.seconds:.3f}"])
    return buffer.getvalue()


def links_csv(test: ListeningTest) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["participant", "link"])
    writer.writerows([p, test.link(p)] for p in test.sessions)
    return buffer.getvalue()


def _audio_path(layout: Layout, entry: Any) -> str | None:
    """The entry's FLAC (lossless) else MP3, if the file exists."""
    if not isinstance(entry, dict):
        return None
    for key in ("flac", "mp3"):
        value = entry.get(key)
        if isinstance(value, str) and value and (layout.root / value).is_file():
            return value
    return None


def _prepare(layout: Layout, tmp: Path, source: Source, secret: str, spec: ListenSpec) -> Stimulus:
    """Decode the source, cut it (and degrade it, for an anchor), write audio/<id>.mp3."""
    path = layout.root / source.path
    data, rate = audio.read_audio(path)
    data = audio.clip(data, rate, spec.clip_seconds)
    if source.condition == ANCHOR:
        data = audio.degrade(
            data,
            rate,
            random.Random(f"{spec.seed}/anchor/{source.item}").getrandbits(32),
            spec.anchor_segment_seconds,
            spec.anchor_lowpass_hz,
            spec.anchor_snr_db,
        )
    stimulus_id = opaque_id(secret, source.condition, source.item)
    file = f"{AUDIO_DIR}/{stimulus_id}.mp3"
    seconds = audio.write_mp3(data, rate, tmp / file)
    return Stimulus(
        stimulus_id, source.condition, source.item, source.path, sha256_file(path), file, seconds
    )
