"""The one error type raised by the radiograph loaders."""

from __future__ import annotations


class RadiographLoadError(ValueError):
    """A file cannot be loaded as a radiograph; the message names the file, the reason and the fix.

    A ``ValueError`` subclass so that dataset readers which catch ``ValueError`` per file keep working.
    """
