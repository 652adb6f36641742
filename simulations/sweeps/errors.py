"""What a sweep raises: bad input before it starts, Ctrl-C while it runs, runs that failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class SweepInputError(ValueError):
    """A sweep that cannot start as asked: a bad --set, scenario, option or output directory."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a KeyboardInterrupt) stopped a sweep; finished runs are kept."""

    def __init__(self, done: int, total: int, out: Path | None,
                 records: dict[str, dict[str, Any]] | None = None):
        self.done, self.total, self.out = done, total, out
        self.records = records or {}  # the finished runs' records, by run-id
        if out is not None:
            message = (f"interrupted: {done} of {total} runs kept in {out / 'runs'}; run again "
                       "with --resume to finish")
        else:
            message = (f"interrupted after {done} of {total} runs; without an output directory "
                       "(--out) none is kept")
        super().__init__(message)


class SweepFailed(RuntimeError):
    """Some runs raised; the others finished and were kept."""

    def __init__(self, failures: dict[str, str], total: int):
        self.failures = failures
        first_id, first = next(iter(failures.items()))
        super().__init__(f"{len(failures)} of {total} runs failed; first ({first_id}):\n{first}")


__all__ = ["SweepFailed", "SweepInputError", "SweepInterrupted"]
