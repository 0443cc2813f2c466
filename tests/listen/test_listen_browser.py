"""End to end: `python -m midilm.listen serve` (uvicorn) and a scripted participant in headless
Chromium. The server is SIGKILLed mid-session and restarted: every submitted rating survives and
the participant resumes where they stopped. Nothing the browser sees or requests names a model."""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from midilm.listen.export import ratings_csv
from midilm.listen.store import DB_FILE
from midilm.listen.testdir import ListeningTest

QUESTIONS = ("overall", "clarity", "quality", "match")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(folder: Path, port: int, log: Path) -> subprocess.Popen:
    """`python -m midilm.listen serve` in its own process; waits until /healthz answers."""
    env = {**os.environ, "MIDILM_NO_PROGRESS": "1"}
    with log.open("ab") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "midilm.listen",
                "serve",
                "--dir",
                str(folder),
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"server exited with {server.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.read() == b"ok":
                    return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    pytest.fail(f"server did not start: {log.read_text()}")


def stored_ratings(folder: Path) -> list[tuple]:
    with sqlite3.connect(folder / DB_FILE) as db:
        return db.execute(
            "SELECT participant, position, stimulus, overall, clarity, quality, match, comment "
            "FROM ratings ORDER BY participant, position"
        ).fetchall()


def choice(test: ListeningTest, stimulus: str, position: int) -> dict[str, int]:
    """What the scripted participant answers: anchors 1, real pieces 5, models 2..4."""
    condition = test.stimuli[stimulus].condition
    overall = {"anchor": 1, "real": 5}.get(condition, 2 + position % 3)
    return {"overall": overall, "clarity": 3, "quality": overall, "match": 4}


def rate_clip(page, test: ListeningTest, session: tuple[str, ...], position: int) -> dict:
    page.wait_for_selector(f"#clip-title:has-text('Clip {position + 1} of {len(session)}')")
    assert page.is_disabled("#submit") and page.is_disabled("#overall-3")  # not played yet
    page.click("#play")
    page.wait_for_selector("#submit:enabled", timeout=20_000)  # enabled once played through
    answers = choice(test, session[position], position)
    for key, value in answers.items():
        page.check(f"#{key}-{value}")
    page.fill("#comment", f"clip {position}, heard in full")
    page.click("#submit")
    return answers


@pytest.mark.timeout(180)
def test_a_participant_completes_a_session_across_a_server_crash(
    planned: tuple[Path, ListeningTest], chromium, tmp_path: Path
) -> None:
    folder, test = planned
    participant = "p002"
    session = test.sessions[participant]
    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    server = start_server(folder, port, log)
    context = chromium.new_context()
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    dom: list[str] = []
    expected = []
    try:
        page.goto(base + test.link(participant))
        page.wait_for_selector("#start:visible")
        assert page.inner_text("#intro-count") == str(len(session))
        page.click("#start")
        for position in range(2):
            expected.append(rate_clip(page, test, session, position))
            dom.append(page.content())
        page.wait_for_selector(f"#clip-title:has-text('Clip 3 of {len(session)}')")
        page.screenshot(path=str(tmp_path / "before_crash.png"), full_page=True)

        server.send_signal(signal.SIGKILL)  # a crash: no shutdown, no flush
        server.wait(timeout=10)
        assert len(stored_ratings(folder)) == 2  # both answered ratings are on disk
        page.click("#play")  # the clip was loaded before the crash; its end cannot be reported
        page.wait_for_selector("#error:visible", timeout=20_000)
        assert "cannot be reached" in page.inner_text("#error")
        assert page.is_disabled("#submit")

        server = start_server(folder, port, log)
        page.reload()
        page.wait_for_selector("#resume-note:visible")
        assert page.inner_text("#resume-count") == "2"
        assert page.inner_text("#start") == "Continue with clip 3"
        page.click("#start")
        for position in range(2, len(session)):
            expected.append(rate_clip(page, test, session, position))
            dom.append(page.content())
        page.wait_for_selector("#done:visible")
        page.screenshot(path=str(tmp_path / "done.png"), full_page=True)
    finally:
        context.close()
        server.kill()
        server.wait(timeout=10)

    rows = stored_ratings(folder)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (participant, i, s) for i, s in enumerate(session)
    ]
    for row, answers in zip(rows, expected, strict=True):
        assert row[3:7] == tuple(answers[q] for q in QUESTIONS)
        assert row[7] == f"clip {row[1]}, heard in full"
    exported = list(csv.DictReader(io.StringIO(ratings_csv(folder)[0])))
    assert [r["condition"] for r in exported] == [test.stimuli[s].condition for s in session]
    assert {r["participant"] for r in exported} == {participant}  # nobody else's rows

    # blinded: no condition, item or source file in any URL or page the participant got
    words = set()
    for stimulus in test.stimuli.values():
        words |= {stimulus.condition, stimulus.item, Path(stimulus.source).stem}
    seen = "\n".join([*requests, *dom])
    for word in sorted(words):
        assert not re.search(rf"\b{re.escape(word)}\b", seen), word
    assert all(url.startswith(base) for url in requests), requests
