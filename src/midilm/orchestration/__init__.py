"""How stages run: the stage registry and the launcher with its executors (local, Slurm)."""
