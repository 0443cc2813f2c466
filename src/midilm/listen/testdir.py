"""A planned test folder: its files, its stimuli and sessions (test.json), ids and tokens.

Light on purpose (no audio or numeric libraries): the server loads it at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEST_FILE = "test.json"
PLAN_FILE = "plan.csv"
LINKS_FILE = "links.csv"
AUDIO_DIR = "audio"


@dataclass(frozen=True)
class Stimulus:
    id: str  # opaque
    condition: str  # a model key, "real" or "anchor"
    item: str  # the sample id (sample_000) or the real piece's id
    source: str  # the repository-relative audio file it was made from
    source_sha256: str
    file: str  # inside the test folder
    seconds: float


@dataclass(frozen=True)
class ListeningTest:
    name: str
    secret: str
    seed: int
    stimuli: dict[str, Stimulus]
    sessions: dict[str, tuple[str, ...]]  # participant -> stimulus ids in play order

    def token(self, participant: str) -> str:
        return participant_token(self.secret, participant)

    def link(self, participant: str) -> str:
        return f"/?participant={participant}&token={self.token(participant)}"


def participant_token(secret: str, participant: str) -> str:
    """The participant's access token: an HMAC of the test's secret (unguessable, per test)."""
    digest = hmac.new(secret.encode(), f"token\0{participant}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def opaque_id(secret: str, condition: str, item: str) -> str:
    """A stimulus id that says nothing of its source: `s` + 12 hex digits of an HMAC."""
    digest = hmac.new(secret.encode(), f"stimulus\0{condition}\0{item}".encode(), hashlib.sha256)
    return "s" + digest.hexdigest()[:12]


def load_test(test_dir: Path) -> ListeningTest:
    path = Path(test_dir) / TEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no listening test here; run `midilm listen plan` first.")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    stimuli = {s["id"]: Stimulus(**s) for s in data["stimuli"]}
    sessions = {p: tuple(ids) for p, ids in data["sessions"].items()}
    return ListeningTest(data["name"], data["secret"], int(data["spec"]["seed"]), stimuli, sessions)
