"""`python -m midilm ...`: the `midilm` command (what dvc.yaml runs through the launcher)."""

from midilm.cli import app

app(prog_name="midilm")
