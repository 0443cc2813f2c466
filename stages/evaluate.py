"""DVC stage `evaluate`: score generated samples and the test split with seed 001's four metrics."""

from midilm.orchestration.stages import run_stage

if __name__ == "__main__":
    run_stage("evaluate")
