"""The listening-test web app (Starlette; `serve` runs it with uvicorn on 127.0.0.1).

Every request but the static files and /healthz carries `participant` and `token` in its query
string; the token is the participant's HMAC of the test's secret (`links.csv`). Pages and URLs
carry only opaque stimulus ids. A refused request is answered with a JSON
`{"error": <what was wrong and what to do>, "code": <kind>}` and changes nothing.

Routes: GET / (the page), GET /api/session (the participant's clips and progress),
GET /audio/<id> (a clip of their session), POST /api/played (a clip played through),
POST /api/ratings (one rating), GET /healthz.
"""

from __future__ import annotations

import hmac
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from midilm.listen.protocol import MAX_COMMENT_CHARS, QUESTIONS, SCALE, SCALE_MAX, SCALE_MIN
from midilm.listen.store import DB_FILE, RatingInput, RatingStore, Refused
from midilm.listen.testdir import load_test

SUBMISSION = re.compile(r"^[A-Za-z0-9-]{8,64}$")
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # nothing outside this server: no CDN, fonts, scripts or media from elsewhere
    "Content-Security-Policy": "default-src 'self'; media-src 'self'; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'",
}


def create_app(test_dir: Path) -> Starlette:
    """The app serving the test planned in `test_dir` (ratings go to `test_dir/ratings.sqlite`)."""
    test_dir = Path(test_dir)
    test = load_test(test_dir)
    store = RatingStore(test_dir / DB_FILE)
    static = resources.files("midilm.listen") / "static"
    page = (static / "index.html").read_text(encoding="utf-8")

    def refuse(error: Refused) -> JSONResponse:
        return JSONResponse(
            {"error": error.message, "code": error.code}, status_code=error.status, headers=HEADERS
        )

    def participant_of(request: Request) -> str:
        participant = request.query_params.get("participant", "")
        token = request.query_params.get("token", "")
        if not token:
            raise Refused(
                401,
                "missing_token",
                "missing token: open the link you were given (it ends in &token=...)",
            )
        if participant not in test.sessions:
            raise Refused(403, "bad_token", "unknown participant or wrong token: check your link")
        if not hmac.compare_digest(token, test.token(participant)):
            raise Refused(403, "bad_token", "unknown participant or wrong token: check your link")
        return participant

    def stimulus_of(participant: str, stimulus: Any) -> tuple[int, str]:
        """(position, id) of `stimulus` in the participant's session; 404 otherwise."""
        session = test.sessions[participant]
        if not isinstance(stimulus, str) or stimulus not in session:
            raise Refused(
                404, "unknown_stimulus", f"no clip {str(stimulus)[:40]!r} in your session"
            )
        return session.index(stimulus), stimulus

    async def index(request: Request) -> HTMLResponse:
        try:
            participant_of(request)
        except Refused as error:
            return HTMLResponse(
                f"<!DOCTYPE html><title>Listening test</title><p>{error.message}</p>",
                status_code=error.status,
                headers=HEADERS,
            )
        return HTMLResponse(page, headers=HEADERS)

    async def session(request: Request) -> JSONResponse:
        try:
            participant = participant_of(request)
        except Refused as error:
            return refuse(error)
        done = await run_in_threadpool(store.rated_count, participant)
        clips = [
            {"position": i, "stimulus": s, "seconds": test.stimuli[s].seconds}
            for i, s in enumerate(test.sessions[participant])
        ]
        return JSONResponse(
            {
                "participant": participant,
                "clips": clips,
                "next": done,
                "questions": [q.__dict__ for q in QUESTIONS],
                "scale": [{"value": v, "label": label} for v, label in SCALE],
                "max_comment": MAX_COMMENT_CHARS,
            },
            headers=HEADERS,
        )

    async def clip(request: Request) -> FileResponse | JSONResponse:
        try:
            participant = participant_of(request)
            _, stimulus = stimulus_of(participant, request.path_params["stimulus"])
        except Refused as error:
            return refuse(error)
        # no filename: nothing in the response names the clip's source
        return FileResponse(
            test_dir / test.stimuli[stimulus].file, media_type="audio/mpeg", headers=HEADERS
        )

    async def played(request: Request) -> JSONResponse:
        try:
            participant = participant_of(request)
            body = await _json_body(request)
            _, stimulus = stimulus_of(participant, body.get("stimulus"))
            seconds = body.get("played_seconds")
            if not _number(seconds):
                raise Refused(400, "bad_request", "`played_seconds` must be a number")
            await run_in_threadpool(
                store.record_play,
                participant,
                stimulus,
                float(seconds),
                test.stimuli[stimulus].seconds,
            )
        except Refused as error:
            return refuse(error)
        return JSONResponse({"ok": True}, headers=HEADERS)

    async def rate(request: Request) -> JSONResponse:
        try:
            participant = participant_of(request)
            body = await _json_body(request)
            position, _ = stimulus_of(participant, body.get("stimulus"))
            rating = _rating(participant, body)
            if rating.position != position:
                raise Refused(
                    400, "bad_request", "`position` does not match the clip's place in the session"
                )
            await run_in_threadpool(store.add_rating, rating)
        except Refused as error:
            return refuse(error)
        return JSONResponse(
            {"ok": True, "next": position + 1, "total": len(test.sessions[participant])},
            status_code=201,
            headers=HEADERS,
        )

    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok", headers=HEADERS)

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/api/session", session),
        Route("/api/played", played, methods=["POST"]),
        Route("/api/ratings", rate, methods=["POST"]),
        Route("/audio/{stimulus}", clip),
        Mount("/static", StaticFiles(packages=[("midilm.listen", "static")]), name="static"),
    ]
    return Starlette(routes=routes)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Refused(400, "bad_request", "the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise Refused(400, "bad_request", "the request body must be a JSON object")
    return body


def _rating(participant: str, body: dict[str, Any]) -> RatingInput:
    answers = {}
    for question in QUESTIONS:
        value = body.get(question.key)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not (SCALE_MIN <= value <= SCALE_MAX)
        ):
            raise Refused(
                400,
                "bad_rating",
                f"`{question.key}` must be a whole number from {SCALE_MIN} to {SCALE_MAX}, "
                f"got {json.dumps(value)[:20]}",
            )
        answers[question.key] = value
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
        raise Refused(
            400, "bad_request", f"`comment` must be text of at most {MAX_COMMENT_CHARS} characters"
        )
    submission = body.get("submission")
    if not isinstance(submission, str) or not SUBMISSION.match(submission):
        raise Refused(
            400, "bad_request", "`submission` must be an id of 8-64 letters, digits or dashes"
        )
    position = body.get("position")
    if isinstance(position, bool) or not isinstance(position, int):
        raise Refused(400, "bad_request", "`position` must be a whole number")
    return RatingInput(participant, position, str(body["stimulus"]), answers, comment, submission)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
