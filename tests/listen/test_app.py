"""The web app's rules over HTTP (Starlette's TestClient, a real SQLite file): a participant's
session, and every bad request refused with a clear error and no change to the database."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from midilm.listen.app import create_app
from midilm.listen.export import ratings_csv
from midilm.listen.store import DB_FILE
from midilm.listen.testdir import ListeningTest


def db_state(folder: Path) -> str:
    """A digest of every row of the database (refused requests must leave it unchanged)."""
    with sqlite3.connect(folder / DB_FILE) as db:
        rows = [
            db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("plays", "ratings")
        ]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


class Participant:
    """A scripted participant talking to the app."""

    def __init__(self, client: TestClient, test: ListeningTest, name: str):
        self.client, self.test, self.name = client, test, name
        self.auth = f"participant={name}&token={test.token(name)}"
        self.session = test.sessions[name]

    def play(self, position: int, seconds: float | None = None):
        stimulus = self.session[position]
        full = self.test.stimuli[stimulus].seconds
        return self.client.post(
            f"/api/played?{self.auth}",
            json={"stimulus": stimulus, "played_seconds": full if seconds is None else seconds},
        )

    def rate(self, at: int, **changes):
        body = {
            "stimulus": self.session[at],
            "position": at,
            "overall": 4,
            "clarity": 3,
            "quality": 4,
            "match": 2,
            "comment": "",
            "submission": str(uuid.uuid4()),
            **changes,
        }
        return self.client.post(f"/api/ratings?{self.auth}", json=body)


@pytest.fixture
def app(planned: tuple[Path, ListeningTest]):
    folder, test = planned
    with TestClient(create_app(folder)) as client:
        yield folder, test, client


def test_a_session_is_served_in_order_and_exported(app) -> None:
    folder, test, client = app
    alice = Participant(client, test, "p001")
    session = client.get(f"/api/session?{alice.auth}").json()
    assert [c["stimulus"] for c in session["clips"]] == list(alice.session)
    assert session["next"] == 0
    assert [q["key"] for q in session["questions"]] == ["overall", "clarity", "quality", "match"]
    audio = client.get(f"/audio/{alice.session[0]}?{alice.auth}")
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
    assert "content-disposition" not in audio.headers  # no file name to give the source away
    assert audio.content == (folder / test.stimuli[alice.session[0]].file).read_bytes()
    for position in range(len(alice.session)):
        assert alice.play(position).status_code == 200
        answer = alice.rate(position, overall=position + 1, comment=f"clip {position}, ok")
        assert answer.status_code == 201, answer.json()
        assert answer.json()["next"] == position + 1
    assert client.get(f"/api/session?{alice.auth}").json()["next"] == len(alice.session)
    text, count = ratings_csv(folder)
    assert count == len(alice.session)
    lines = text.splitlines()
    assert lines[0].startswith("test,participant,position,stimulus,condition,item,overall")
    for position, line in enumerate(lines[1:]):
        stimulus = test.stimuli[alice.session[position]]
        assert line.startswith(
            f"test,p001,{position},{stimulus.id},{stimulus.condition},{stimulus.item},"
            f'{position + 1},3,4,2,"clip {position}, ok",'
        )


def test_bad_requests_are_refused_and_change_nothing(app) -> None:
    folder, test, client = app
    alice, bob = Participant(client, test, "p001"), Participant(client, test, "p002")
    assert alice.play(0).status_code == 200
    assert alice.rate(0).status_code == 201
    alice_only = next(s for s in alice.session if s not in bob.session)
    before = db_state(folder)

    def refused(response, status: int, code: str, words: str) -> None:
        assert response.status_code == status, response.text[:200]
        body = response.json()
        assert body["code"] == code and words in body["error"], body
        assert db_state(folder) == before

    stimulus = alice.session[1]
    good = {
        "stimulus": stimulus,
        "position": 1,
        "overall": 3,
        "clarity": 3,
        "quality": 3,
        "match": 3,
        "submission": "abcdefgh-1",
    }
    # missing or wrong token, unknown participant
    refused(client.post("/api/ratings", json=good), 401, "missing_token", "missing token")
    refused(client.post("/api/ratings?participant=p001", json=good), 401, "missing_token", "link")
    refused(
        client.post("/api/ratings?participant=p001&token=x", json=good),
        403,
        "bad_token",
        "wrong token",
    )
    refused(
        client.post(f"/api/ratings?participant=p001&token={test.token('p002')}", json=good),
        403,
        "bad_token",
        "wrong token",
    )
    refused(
        client.post(f"/api/ratings?participant=p999&token={test.token('p001')}", json=good),
        403,
        "bad_token",
        "unknown participant",
    )
    refused(client.get("/api/session"), 401, "missing_token", "missing token")
    refused(client.get(f"/audio/{stimulus}"), 401, "missing_token", "missing token")
    assert client.get("/").status_code == 401 and "missing token" in client.get("/").text
    # unknown stimulus, or one of someone else's session
    refused(alice.rate(1, stimulus="s000000000000"), 404, "unknown_stimulus", "no clip")
    refused(client.get(f"/audio/s000000000000?{alice.auth}"), 404, "unknown_stimulus", "no clip")
    refused(client.get(f"/audio/{alice_only}?{bob.auth}"), 404, "unknown_stimulus", "no clip")
    # ratings out of range or of the wrong type, malformed bodies
    for bad in (0, 6, 3.5, "4", True, None, -1):
        refused(alice.rate(1, overall=bad), 400, "bad_rating", "whole number from 1 to 5")
    refused(alice.rate(1, match=7), 400, "bad_rating", "`match`")
    refused(alice.rate(1, comment="x" * 2001), 400, "bad_request", "at most 2000")
    refused(alice.rate(1, submission="short"), 400, "bad_request", "`submission`")
    refused(alice.rate(1, position=2), 400, "bad_request", "does not match")
    refused(
        client.post(f"/api/ratings?{alice.auth}", content=b"{not json"),
        400,
        "bad_request",
        "JSON object",
    )
    refused(client.post(f"/api/ratings?{alice.auth}", json=[1, 2]), 400, "bad_request", "JSON")
    refused(
        client.post(f"/api/played?{alice.auth}", json={"stimulus": stimulus}),
        400,
        "bad_request",
        "played_seconds",
    )
    # rating before playing the clip through, or after playing only part of it
    refused(alice.rate(1), 409, "not_played", "listen to the whole clip")
    refused(alice.play(1, seconds=0.5), 409, "incomplete_playback", "listen to the whole clip")
    refused(alice.rate(1), 409, "not_played", "listen to the whole clip")
    # out of order: clip 3 before clip 2
    assert alice.play(2).status_code == 200
    before = db_state(folder)
    refused(alice.rate(2), 409, "out_of_order", "not the next one")
    # a replayed submission and a second rating of a rated clip
    assert alice.play(1).status_code == 200
    first = alice.rate(1, submission="abcdefgh-2")
    assert first.status_code == 201
    before = db_state(folder)
    refused(alice.rate(1, submission="abcdefgh-2"), 409, "replayed", "already recorded")
    refused(alice.rate(1, submission="abcdefgh-3"), 409, "duplicate", "already rated")
    refused(alice.rate(0, submission="abcdefgh-4"), 409, "duplicate", "already rated")
    # another participant replaying alice's submission id cannot overwrite it either
    assert bob.play(0).status_code == 200
    before = db_state(folder)
    refused(bob.rate(0, submission="abcdefgh-2"), 409, "replayed", "already recorded")
    assert bob.rate(0).status_code == 201


def test_static_page_has_no_outside_resources(app) -> None:
    _, test, client = app
    page = client.get(f"/?participant=p001&token={test.token('p001')}")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text and "static/listen.js" in page.text
    for name in ("listen.js", "listen.css"):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and "http://" not in asset.text
    assert client.get("/healthz").text == "ok"
