"""Data package: shared config overlays (MLflow tracking)."""
