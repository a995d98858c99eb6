"""Errors raised by medgen data readers, and the collector that gathers every problem before raising.

A reader walks the whole dataset, records each bad row or file with :class:`ProblemCollector`, and at the
end raises ONE :class:`DataError` listing all of them, so a user fixes their folder in one pass instead of
one file per run. With ``on_error="skip"`` the bad entries are dropped instead, and the list is logged and
written to a file (never skipped silently).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("medgen.data")

ON_ERROR_OPTIONS = ("raise", "skip")
_MAX_LISTED = 200  # problems shown in an exception message; the full list is always in DataError.problems


@dataclass(frozen=True)
class Problem:
    """One bad file or row: ``where`` names it (a path, or ``path:row``), ``why`` says what is wrong."""

    where: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.why}"


class DataError(ValueError):
    """A dataset on disk does not match what its reader expects; the message names the files and the fix.

    Attributes:
        problems: every problem found (the message lists at most the first 200).
    """

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class PatientLeakError(DataError):
    """The same patient appears in two splits; ``leaks`` maps each patient id to the split indices."""

    def __init__(self, message: str, leaks: dict[str, list[int]]) -> None:
        super().__init__(message)
        self.leaks = leaks


def check_on_error(on_error: str) -> str:
    """Validate the ``on_error`` option shared by every reader."""
    if on_error not in ON_ERROR_OPTIONS:
        raise ValueError(f"on_error={on_error!r} is not supported; use one of {ON_ERROR_OPTIONS}.")
    return on_error


class ProblemCollector:
    """Gathers problems while a reader runs, then raises them together or writes the skip list.

    Args:
        source: what is being read (dataset name and root), used in messages.
        on_error: ``"raise"`` (one :class:`DataError` with every problem) or ``"skip"`` (drop the bad
            entries, log them and write them to ``skip_report``).
        skip_report: file that receives the skip list (tab-separated ``where``/``why``); by default
            ``./<name>_skipped.tsv`` in the working directory. Bundles pass a path next to their output.
        name: short reader name used for the default report file.
    """

    def __init__(
        self,
        source: str,
        on_error: str = "raise",
        skip_report: str | Path | None = None,
        name: str = "medgen",
    ) -> None:
        self.source = source
        self.on_error = check_on_error(on_error)
        self.skip_report = Path(skip_report) if skip_report is not None else Path(f"{name}_skipped.tsv")
        self.problems: list[Problem] = []

    def add(self, where: str | Path, why: str) -> None:
        self.problems.append(Problem(str(where), why))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.problems.extend(problems)

    def __len__(self) -> int:
        return len(self.problems)

    def finish(self, hint: str = "") -> None:
        """Raise every problem as one error (``on_error="raise"``) or log and write the skip list."""
        if not self.problems:
            return
        if self.on_error == "raise":
            raise DataError(self.format(hint), self.problems)
        self.skip_report.parent.mkdir(parents=True, exist_ok=True)
        with open(self.skip_report, "w", encoding="utf-8") as f:
            f.write("where\twhy\n")
            for p in self.problems:
                f.write(f"{p.where}\t{p.why}\n")
        logger.warning(
            "%s: skipped %d bad entries (on_error='skip'); list written to %s:\n%s",
            self.source,
            len(self.problems),
            self.skip_report,
            "\n".join(f"  {p}" for p in self.problems[:_MAX_LISTED]),
        )

    def format(self, hint: str = "") -> str:
        lines = [f"{self.source}: {len(self.problems)} problem(s) found:"]
        lines += [f"  {p}" for p in self.problems[:_MAX_LISTED]]
        if len(self.problems) > _MAX_LISTED:
            lines.append(f"  ... and {len(self.problems) - _MAX_LISTED} more (all in DataError.problems)")
        lines.append(
            hint
            or "Fix or remove these entries, or pass on_error='skip' to leave them out (listed in a file)."
        )
        return "\n".join(lines)


def require_columns(path: str | Path, header: Sequence[str], required: Sequence[str], expected: str) -> None:
    """Raise a :class:`DataError` naming the file, the missing columns and the expected header.

    Args:
        path: the CSV being read.
        header: the column names found.
        required: the column names the reader needs.
        expected: the header line the reader expects, shown verbatim in the message.
    """
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}. Found columns {list(header)}.\n"
            f"Expected a header like:\n  {expected}",
            [Problem(str(path), f"missing columns {missing}")],
        )
