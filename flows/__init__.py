"""Prefect orchestration of the DVC DAG: one task per stage, no domain logic (docs/cluster.md)."""
