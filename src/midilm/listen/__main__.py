"""`python -m midilm.listen plan|serve|export` (the same commands as `midilm listen`)."""

from midilm.listen.cli import app

if __name__ == "__main__":
    app()
