"""Datasets: sources (music21 corpus, folders), validation and quarantine, manifest, split."""
