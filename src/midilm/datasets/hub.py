"""Datasets hosted on the Hugging Face Hub, fetched with `huggingface_hub.snapshot_download`.

Offline (`HF_HUB_OFFLINE=1`) or with the Hub unreachable, a snapshot already in the cache is
used; when there is none, `HubUnavailableError` says which repo is missing and how to provide it.
The environment is read at call time, so a test or a stage can set it after import.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from tqdm.auto import tqdm

from midilm.common.hub import hub_offline
from midilm.common.logging import get_logger, progress_disabled
from midilm.datasets.errors import FetchError

log = get_logger(__name__)


class HubUnavailableError(FetchError, RuntimeError):
    """The Hub cannot be used (offline mode or unreachable) and nothing is cached, or it
    refused the repo or revision."""


def hub_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The snapshot cache: the argument, $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home) / "hub"


def hub_snapshot(
    repo_id: str,
    repo_type: str = "dataset",
    revision: str | None = None,
    allow_patterns: list[str] | str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Local folder of `repo_id` at `revision` (pin a commit hash for reproducibility)."""
    cache = hub_cache_dir(cache_dir)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per HTTP request
    offline = hub_offline()
    if revision is None:
        log.warning("%s: no revision pinned; the snapshot may change between runs", repo_id)
    try:
        path = snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=revision,
            allow_patterns=allow_patterns,
            cache_dir=cache,
            local_files_only=offline,
            endpoint=os.environ.get("HF_ENDPOINT") or None,
            tqdm_class=_SilentTqdm if progress_disabled() else None,
        )
    except LocalEntryNotFoundError as exc:
        message = _unavailable_message(repo_id, repo_type, revision, cache, offline)
        if not offline and exc.__cause__ is not None:
            message += f" (cause: {str(exc.__cause__).splitlines()[0]})"
        raise HubUnavailableError(message) from exc
    except (HfHubHTTPError, OSError) as exc:  # not found, gated, a revision that is not there
        raise HubUnavailableError(
            f"{repo_type} {repo_id} at revision {revision or 'main'}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else exc!r}; check "
            "the repo id and revision, or download it yourself and set the source's `path`"
        ) from exc
    log.info("%s: snapshot at %s", repo_id, path)
    return Path(path)


def _unavailable_message(
    repo_id: str, repo_type: str, revision: str | None, cache: Path, offline: bool
) -> str:
    why = (
        "offline mode is on (HF_HUB_OFFLINE=1)"
        if offline
        else "the Hugging Face Hub is unreachable"
    )
    at = f" at revision {revision}" if revision else ""
    return (
        f"Hugging Face {repo_type} {repo_id!r}{at}: {why} and no snapshot is cached in {cache}. "
        f"Provide the files one of two ways: (1) on a machine with access run "
        f"`hf download {repo_id} --repo-type {repo_type}"
        f"{f' --revision {revision}' if revision else ''}` and copy its cache to {cache} "
        f"(or point HF_HOME / HF_HUB_CACHE at a pre-downloaded cache); (2) put the dataset's "
        f"extracted files in a mirror folder `$MIDILM_MIRROR/<dataset>/` and set MIDILM_MIRROR."
    )


class _SilentTqdm(tqdm):  # type: ignore[misc]
    """snapshot_download's progress bars, switched off (MIDILM_NO_PROGRESS)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)
