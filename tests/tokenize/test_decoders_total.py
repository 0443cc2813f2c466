"""Decoders are total: any id sequence and any text decode to a valid score or raise DecodeError,
within a time and memory bound per case (hypothesis fuzzing of every tokenizer family, plus
explicit hostile cases run in a child process with an address-space limit). The fuzz test
writes a summary (cases, valid scores, DecodeErrors, crashes, hangs) to
`decoder_fuzz_summary.json` in its temp dir, or to $MIDILM_FUZZ_SUMMARY, and prints it."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import symusic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midilm.common.params import load_params, to_plain
from midilm.tokenize import build_tokenizer
from midilm.tokenize.base import MAX_TICK, DecodeError
from midilm.tokenize.midicompact import MidiCompactTokenizer
from midilm.tokenize.simplified_midi import SimplifiedMidiTokenizer

OURS = ("midicompact", "simplified_midi", "simplified_midi_bend")
MIDITOK = ("remi", "tsd", "midilike", "structured", "cpword", "octuple", "mmm")
CASE_SECONDS = 10.0  # a case running longer is a hang
BASE_BYTES, BYTES_PER_ITEM = 32 * 2**20, 4096  # memory bound: base + per id or character
SUMMARY: dict[str, Counter[str]] = {}


class Hang(Exception):
    """A case ran past CASE_SECONDS."""


@pytest.fixture(scope="module")
def tokenizers(repo_root: Path) -> dict[str, Any]:
    """Every family as params.yaml configures it."""
    params = to_plain(load_params(repo_root / "params.yaml"))
    built = {}
    for key in (*OURS, *MIDITOK):
        cfg = {k: v for k, v in params["tokenizers"][key].items() if k != "train"}
        built[key] = build_tokenizer({**cfg, "name": cfg.get("family") or cfg["name"]})
    return built


@pytest.fixture(scope="module", autouse=True)
def summary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Write and print the summary table when the module's tests are done."""
    yield
    table = {key: dict(counts) for key, counts in sorted(SUMMARY.items())}
    total = sum((Counter(c) for c in SUMMARY.values()), Counter())
    table["total"] = dict(total)
    target = os.environ.get("MIDILM_FUZZ_SUMMARY")
    path = Path(target) if target else tmp_path_factory.mktemp("fuzz") / "decoder_fuzz_summary.json"
    path.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    columns = ("cases", "valid", "decode_error", "crash", "hang")
    print(f"\ndecoder fuzz summary ({path}):")
    print(f"{'tokenizer':<30}" + "".join(f"{c:>14}" for c in columns))
    for key, counts in table.items():
        print(f"{key:<30}" + "".join(f"{counts.get(c, 0):>14}" for c in columns))


def assert_valid(score: symusic.Score) -> None:
    """Every note inside MIDI's ranges and int32 ticks, and the score writes as a MIDI file."""
    for track in score.tracks:
        notes = track.notes.numpy()
        if not len(notes["time"]):
            continue
        time, dur = notes["time"].astype(np.int64), notes["duration"].astype(np.int64)
        assert time.min() >= 0 and dur.min() >= 0 and (time + dur).max() <= MAX_TICK
        assert notes["pitch"].min() >= 0 and notes["pitch"].max() <= 127
        assert notes["velocity"].min() >= 1 and notes["velocity"].max() <= 127
    assert score.dumps_midi()


def run_case(key: str, call: Callable[[], symusic.Score], size: int) -> str:
    """Run one decode under the time and memory bounds; record and return its outcome."""
    counts = SUMMARY.setdefault(key, Counter())
    counts["cases"] += 1
    signal.signal(signal.SIGALRM, _alarm)
    tracemalloc.start()  # only around the decode: tracing slows everything it watches
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        score, outcome = call(), "valid"
    except DecodeError:
        score, outcome = None, "decode_error"
    except Hang:
        score, outcome = None, "hang"
    except Exception:
        counts["crash"] += 1
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    counts[outcome] += 1
    assert outcome != "hang", f"{key}: a decode ran over {CASE_SECONDS} s"
    assert peak <= BASE_BYTES + BYTES_PER_ITEM * size, f"{key}: {peak} bytes for {size} items"
    if score is not None:
        assert_valid(score)
    return outcome


def _alarm(signum: int, frame: Any) -> None:
    raise Hang


def ids_for(vocab_size: int) -> st.SearchStrategy[list[Any]]:
    """Mostly in-vocabulary ids, some out of range (negative, past the end, beyond int64);
    one list in five also holds something that is not an id at all."""
    inside = st.integers(0, vocab_size - 1)
    outside = st.one_of(st.integers(-(2**70), -1), st.integers(vocab_size, 2**70))
    ids = st.lists(st.one_of(inside, inside, inside, outside), max_size=400)
    junk = st.one_of(st.floats(), st.none(), st.text(max_size=3), st.just(np.float32(2.0)))
    spoiled = st.tuples(ids, st.integers(0, 400), junk).map(lambda t: [*t[0][: t[1]], t[2]])
    return st.one_of(ids, ids, ids, ids, spoiled)


FIELD = st.builds(
    "{}{}".format, st.sampled_from(["p", "v", "d", "t", "b", ""]), st.integers(0, 10**25)
)
WORDISH = st.one_of(
    st.text(max_size=12),
    st.lists(FIELD, min_size=1, max_size=5).map(":".join),  # Simplified MIDI-like words
    st.builds("{:x}:{:x}".format, st.integers(0, 300), st.integers(0, 20)),  # MIDICompact-like
    st.builds("t{}".format, st.integers(0, 10**12)),
    st.sampled_from(["<start>", "<end>", "d1e14", "p60:v0:d96:t0", "p60:v80:d1000000000000:t0"]),
    st.sampled_from(["p٣:v٣:d٣:t٣", "\x00", "t-1", "3c:-1", "p60:v80:d96:t0:b99"]),
)
TEXTS = st.one_of(st.text(max_size=200), st.lists(WORDISH, max_size=60).map(" ".join))
FUZZ = settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


@pytest.mark.parametrize("key", [*OURS, *MIDITOK])
def test_any_ids_decode_or_raise_decode_error(key: str, tokenizers: dict[str, Any]) -> None:
    tok = tokenizers[key]

    @FUZZ
    @given(ids_for(tok.vocab_size))
    def check(ids: list[int]) -> None:
        run_case(key, lambda: tok.decode(ids), len(ids))

    check()


@pytest.mark.parametrize("key", OURS)
def test_any_text_decodes_or_raises_decode_error(key: str, tokenizers: dict[str, Any]) -> None:
    tok = tokenizers[key]

    @settings(FUZZ, max_examples=150)
    @given(TEXTS)
    def check(text: str) -> None:
        run_case(f"{key} (text)", lambda: tok.decode(tok.from_text(text)), len(text))

    check()


def hostile_cases() -> dict[str, str]:
    """Each explicit hostile case -> its outcome ("valid: ...", "DecodeError: ..." or the
    unexpected exception), run where the address space is limited (see the test)."""
    mc, sm = MidiCompactTokenizer(), SimplifiedMidiTokenizer()
    t125, long_t = mc.vocab["t125"], sm.vocab["t1023"]
    note = [sm.vocab["p60"], sm.vocab["v80"], sm.vocab["d96"]]
    cases: dict[str, Callable[[], Any]] = {
        "sm text d1000000000000": lambda: sm.from_text_with_report("p60:v80:d1000000000000:t0"),
        "sm text d1e14": lambda: sm.from_text_with_report("p60:v80:d1e14:t0"),
        "sm text 20-digit values": lambda: sm.from_text_with_report(f"p{'9' * 20}:v1:d1:t1"),
        "sm text 5000-digit value": lambda: sm.from_text_with_report(f"p60:v1:d{'9' * 5000}:t1"),
        "sm text v0": lambda: sm.decode(sm.from_text("p60:v0:d96:t0")).tracks[0].notes[0],
        "sm text past int32": lambda: sm.from_text("p60:v80:d1:t65535 " * 33_000),
        "sm ids two million waits": lambda: sm.decode([*note, *[long_t] * 2_100_000]),
        "sm text None": lambda: sm.from_text(None),  # type: ignore[arg-type]
        "mc ids two million waits": lambda: mc.decode([mc.vocab["3c:a"], *[t125] * 2_200_000]),
        "mc ids not integers": lambda: mc.decode([mc.vocab["3c:a"], 1.5, "t1", None]),
        "mc text None": lambda: mc.from_text(None),  # type: ignore[arg-type]
        "mc ids huge": lambda: mc.decode_with_report([10**30, -(10**30), mc.vocab["3c:a"]]),
        "mc zero velocity is a note-off": lambda: mc.decode_with_report([mc.vocab["3c:0"]]),
    }
    outcomes = {}
    for name, call in cases.items():
        try:
            outcomes[name] = f"valid: {call()!r}"[:160]
        except DecodeError as exc:
            outcomes[name] = f"DecodeError: {exc}"
        except BaseException as exc:  # reported to the parent, which fails the test
            outcomes[name] = f"{type(exc).__name__}: {exc}"
    return outcomes


def test_hostile_cases_with_an_address_space_limit() -> None:
    """The inputs of issue 11 that allocated gigabytes, wrapped times or raised raw errors,
    run in a child process whose address space is capped at 2 GiB (an allocation like the
    7 GiB one these inputs used to make fails there instead of swapping this machine)."""
    limit = 2 * 2**30
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "import test_decoders_total as t; print(json.dumps(t.hostile_cases()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outcomes: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    SUMMARY["hostile cases"] = Counter(
        cases=len(outcomes),
        valid=sum(o.startswith("valid") for o in outcomes.values()),
        decode_error=sum(o.startswith("DecodeError") for o in outcomes.values()),
        crash=sum(not o.startswith(("valid", "DecodeError")) for o in outcomes.values()),
    )
    assert len(outcomes) == 13, outcomes
    expect_error = {"sm text past int32", "sm ids two million waits", "sm text None",
                    "mc ids two million waits", "mc ids not integers", "mc text None"}  # fmt: skip
    for name, outcome in outcomes.items():
        assert outcome.startswith("DecodeError" if name in expect_error else "valid"), outcome
    assert (
        "past" in outcomes["mc ids two million waits"]
        and "t125" in outcomes["mc ids two million waits"]
    )
    assert outcomes["sm text d1000000000000"] == "valid: ([], 1)"  # dropped, counted
    assert outcomes["sm text 5000-digit value"] == "valid: ([], 1)"
    assert "velocity=1" in outcomes["sm text v0"]
    assert outcomes["mc zero velocity is a note-off"].endswith(", 1)")  # nothing sounding: dropped
    assert "NoneType" in outcomes["mc text None"]


@pytest.mark.parametrize("key", ["remi", "octuple"])
def test_miditok_decoders_name_a_bad_id(key: str, tokenizers: dict[str, Any]) -> None:
    tok = tokenizers[key]
    with pytest.raises(DecodeError, match=r"token 'Bar' at position 1 is not an integer id"):
        tok.decode([tok.bos_id, "Bar"])
    assert tok.decode([-1, 10**30, tok.vocab_size]).note_num() == 0  # out of range: dropped
