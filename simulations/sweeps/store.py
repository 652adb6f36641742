"""The durable record of a sweep in its output directory: ``OUT/plan.json`` and
``OUT/runs/<run-id>.json``.

Each finished run is written atomically (``model.files.write_atomic``) as it completes, so a
sweep stopped at any moment keeps every run that finished and no half-written one. The plan
says which sweep the directory holds: a different sweep there is refused unless forced, and the
same one resumes (only the run-ids missing on disk run again). Tables are built from the set of
records keyed by run-id, so no run is ever counted twice.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from faultmesh.model.files import write_atomic
from faultmesh.simulations.sweeps.errors import SweepInputError
from faultmesh.simulations.sweeps.plan import RunTask

# What a finished sweep writes beside runs/ (removed by --force, with the runs)
OUTPUT_GLOBS = ("runs.parquet", "table.parquet", "metric_vs_*.png", "heatmap_*.png",
                "stability_map_*.png")


def record_for(task: RunTask, summary: Mapping[str, Any]) -> dict[str, Any]:
    """A run's record: its identity in the sweep, then the engine's summary."""
    return {"run_id": task.run_id, "point": task.point, "replication": task.replication,
            "params": task.params, **summary, "seed": task.seed}


class RunStore:
    """``OUT/plan.json`` and ``OUT/runs/<run-id>.json``: the durable record of a sweep."""

    def __init__(self, out: Path, plan_json: dict[str, Any], *, resume: bool, force: bool):
        self.out = Path(out)
        self.runs_dir = self.out / "runs"
        if self.out.exists() and not self.out.is_dir():
            raise SweepInputError(f"--out {self.out} is a file, not a directory")
        old = self._read_plan()
        have = self.run_ids()
        if force:
            self.clear()
        elif old is not None and old != plan_json:
            differ = [k for k in plan_json if old.get(k) != plan_json.get(k)]
            raise SweepInputError(
                f"{self.out} holds a different sweep (its plan.json differs in "
                f"{', '.join(differ) or 'format'}); use another --out, or --force to replace it")
        elif old is None and have:
            raise SweepInputError(f"{self.out}/runs holds {len(have)} runs but no plan.json; "
                                  "use another --out, or --force to replace them")
        elif have and not resume:
            total = plan_json.get("runs", "?")
            raise SweepInputError(
                f"{self.out} already holds {len(have)} of {total} runs of this sweep; pass "
                "--resume to run only the missing ones, or --force to start over")
        write_atomic(self.out / "plan.json", json.dumps(plan_json, indent=2).encode())

    def _read_plan(self) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = json.loads((self.out / "plan.json").read_text())
            return result
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def run_ids(self) -> set[str]:
        """The run-ids with a record on disk."""
        if not self.runs_dir.is_dir():
            return set()
        return {p.stem for p in self.runs_dir.glob("*.json")}

    def clear(self) -> None:
        """Remove what a sweep writes here (and nothing else)."""
        for pattern in OUTPUT_GLOBS:
            for path in self.out.glob(pattern):
                path.unlink()
        if self.runs_dir.is_dir():
            for path in self.runs_dir.glob("*.json"):
                path.unlink()
        with contextlib.suppress(OSError):
            (self.out / "plan.json").unlink()

    def load(self, wanted: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored records of these run-ids (unreadable files are left to be run again)."""
        records = {}
        for run_id in wanted:
            try:
                records[run_id] = json.loads((self.runs_dir / f"{run_id}.json").read_text())
            except (OSError, ValueError):
                continue
        return records

    def save(self, record: dict[str, Any]) -> None:
        """Write one finished run's record, atomically."""
        write_atomic(self.runs_dir / f"{record['run_id']}.json",
                     json.dumps(record, indent=1).encode())

    def write(self, name: str, data: bytes) -> Path:
        """Write one of the sweep's outputs (a table, a figure) beside the runs, atomically."""
        path = self.out / name
        write_atomic(path, data)
        return path


__all__ = ["OUTPUT_GLOBS", "RunStore", "record_for"]
