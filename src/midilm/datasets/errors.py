"""The one error a dataset file that cannot be fetched raises: download or extraction."""

from __future__ import annotations


class FetchError(Exception):
    """A dataset file could not be downloaded or extracted. The message names the file, what
    was wrong and what to do; catch this one type for every download and extraction failure."""
