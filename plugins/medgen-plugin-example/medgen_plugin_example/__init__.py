"""Example medgen plugin (kept import-light: medgen reads ``medgen.yaml`` without importing ``espcn``)."""

__version__ = "0.1.0"
