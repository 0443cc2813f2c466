"""DVC stage `complexity`: decoding time per token and cache memory against context (T7)."""

from midilm.orchestration.stages import run_stage

if __name__ == "__main__":
    run_stage("complexity")
