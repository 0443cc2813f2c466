"""DVC stage `pack`: pack token sequences into Arrow and Megatron binidx."""

from midilm.orchestration.stages import run_stage

if __name__ == "__main__":
    run_stage("pack")
