"""DVC stage `split`: assign train/valid/test by content hash."""

from midilm.orchestration.stages import run_stage

if __name__ == "__main__":
    run_stage("split")
