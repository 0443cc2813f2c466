"""DVC stage `augment`: augment the train split (transposition, velocity jitter)."""

from midilm.orchestration.stages import run_stage

if __name__ == "__main__":
    run_stage("augment")
