"""Data package: medgen's built-in MONAI bundles (configs, metadata, docs; no code)."""
