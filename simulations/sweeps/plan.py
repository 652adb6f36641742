"""The plan of a sweep: its grid points, their Systems, and one RunTask per (point, seed).

A sweep is planned before anything runs. The grid is the cartesian product of the ``--set``
values (and of the scenarios, when several are given); each point runs ``seeds``
replications. A sweep makes at most ``MAX_RUNS`` runs: its size is counted (``planned_runs``)
before a single point is built, so ``--seeds 3000000`` or a huge grid is refused at once
rather than planned for minutes. Every point's System is the fully resolved
``to_document(system)`` with its values written in by ``model.spec.edit`` (the editor repairs
use too) and validated by ``from_document``: a bad path or value is a ``SweepInputError``
naming the ``--set`` (or the combination of ``--set``s) at fault, before a single run starts.

Seeds come from ``numpy.random.SeedSequence(base_seed)`` spawned by (point index, replication),
never from a worker's state, so a sweep gives the same numbers serially, on a process pool or on
a Dask cluster, with any number of workers. A run's id is derived from its parameters, scenario
and replication, so a resumed sweep recognises the runs it already has.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faultmesh.model.spec import SpecErrors, from_document, to_document
from faultmesh.model.spec.edit import EditError, apply_changes, check_key
from faultmesh.model.system import System
from faultmesh.model.units import parse_duration
from faultmesh.simulations.sweeps.errors import SweepInputError
from faultmesh.simulations.sweeps.grid import canonical, canonical_path, setting
from faultmesh.simulations.sweeps.stability import RecoveryOptions, check_room, resolve

PLAN_VERSION = 1
SCENARIO = "scenario"  # the grid dimension that several scenarios form
MAX_PROBLEMS = 10  # invalid grid points reported at once
# Every run is planned (a task each, with its System) before the first starts, and every run's
# record is kept: 100,000 runs plan in seconds and keep a table of a few hundred MB at most.
MAX_RUNS = 100_000


@dataclass(frozen=True)
class RunTask:
    """One run, as shipped to a worker: everything it needs and nothing else."""

    run_id: str
    point: int
    replication: int
    params: dict[str, Any]
    seed: int
    system: System
    scenario: str | None
    duration: float | None
    recovery: RecoveryOptions | None = None  # a stability sweep: measure recovery too


@dataclass(frozen=True)
class Point:
    """One point of the grid: its values (path or ``scenario`` -> value) and its System."""

    index: int
    params: dict[str, Any]
    system: System
    scenario: str | None


@dataclass(frozen=True)
class Plan:
    """What a sweep will run: the points of the grid times the replications."""

    system: System
    grid: dict[str, list[Any]]
    scenarios: tuple[str | None, ...]
    duration: float | None
    seeds: int
    base_seed: int
    points: tuple[Point, ...]
    runs: tuple[RunTask, ...] = field(repr=False)
    recovery: RecoveryOptions | None = None  # set for a stability sweep

    @property
    def params(self) -> list[str]:
        """The grid's dimensions in order (``scenario`` first when several are swept)."""
        return ([SCENARIO] if len(self.scenarios) > 1 else []) + list(self.grid)

    def to_json(self) -> dict[str, Any]:
        """What identifies the sweep (stored as OUT/plan.json and compared on resume)."""
        result: dict[str, Any] = json.loads(json.dumps({
            "version": PLAN_VERSION,
            "system": self.system.name,
            "spec": to_document(self.system),
            "scenarios": list(self.scenarios),
            "duration_s": self.duration,
            "seeds": self.seeds,
            "base_seed": self.base_seed,
            "grid": [[path, values] for path, values in self.grid.items()],
            "runs": len(self.runs),
        }, default=str))
        if self.recovery is not None:  # absent otherwise: older sweeps' plans stay equal
            result["stability"] = json.loads(json.dumps(dataclasses.asdict(self.recovery)))
        return result


def derive_seed(base_seed: int, point: int, replication: int) -> int:
    """The seed of one run: ``SeedSequence(base_seed).spawn`` keyed by (point, replication).

    Equal to ``SeedSequence(base_seed).spawn(point + 1)[point].spawn(replication + 1)[-1]``'s
    first 32-bit word, computed directly; a plain int, so ``faultmesh simulate --seed`` can
    replay the run.
    """
    sequence = np.random.SeedSequence(base_seed, spawn_key=(point, replication))
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def run_id_for(params: Mapping[str, Any], scenario: str | None, replication: int) -> str:
    """A stable, file-name-safe id from a run's parameters, scenario and replication."""
    digest = hashlib.sha256(canonical({"params": dict(params), "scenario": scenario})
                            .encode()).hexdigest()
    return f"{digest[:12]}-r{replication}"


def load_system(system_or_path: System | str | os.PathLike[str]) -> System:
    if isinstance(system_or_path, System):
        return system_or_path
    from faultmesh.model.spec.load import load as load_spec

    return load_spec(system_or_path)


def _scenarios(system: System, scenario: str | Iterable[str] | None) -> tuple[str | None, ...]:
    if scenario is None:
        return (None,)
    names = (scenario,) if isinstance(scenario, str) else tuple(scenario)
    if not names:
        return (None,)
    if len(set(names)) != len(names):
        raise SweepInputError("a scenario is named twice")
    for name in names:
        if name not in system.scenarios:
            known = list(system.scenarios)
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else \
                f"; it has {', '.join(known)}" if known else "; the spec defines none"
            raise SweepInputError(f"no scenario {name!r} in {system.name}{hint}")
    return names


def _duration(duration: float | str | None) -> float | None:
    if duration is None:
        return None
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise SweepInputError(f"--duration: {exc}") from None
    if seconds <= 0:
        raise SweepInputError("--duration must be positive")
    return seconds


def planned_runs(grid: Mapping[str, Iterable[Any]] | None, seeds: int,
                 scenarios: int = 1) -> int:
    """Runs a sweep makes: scenarios x the product of the grid's value counts x seeds."""
    points = max(1, scenarios)
    for values in (grid or {}).values():
        points *= len(list(values))
    return points * seeds


def check_size(grid: Mapping[str, Iterable[Any]] | None, seeds: int, scenarios: int = 1) -> int:
    """``planned_runs``, or a SweepInputError naming what to lower when past ``MAX_RUNS``."""
    runs = planned_runs(grid, seeds, scenarios)
    if runs > MAX_RUNS:
        points = runs // seeds
        raise SweepInputError(
            f"the sweep would make {runs:,} runs ({points:,} grid "
            f"point{'s' if points != 1 else ''} x --seeds {seeds:,}); a sweep makes at most "
            f"{MAX_RUNS:,}: lower --seeds or use fewer --set values, or split it into "
            "several sweeps")
    return runs


def _blame(error_path: str, assignments: Mapping[str, Any]) -> list[str]:
    """The --set paths an error at ``error_path`` is about (all of them if none matches)."""
    hit = [p for p in assignments
           if error_path == p or error_path.startswith((p + ".", p + "["))
           or p.startswith((error_path + ".", error_path + "["))]
    return hit or list(assignments)


def build_point(base: dict[str, Any], system: System, values: dict[str, Any], *,
                together: bool = False) -> System:
    """The System of one grid point; errors name the --set they are about, or (``together``:
    the values are fine one by one) the whole combination."""
    if not values:
        return system
    try:
        document = apply_changes(base, values)
    except EditError as exc:
        raise SweepInputError(f"--set {exc.path}: {exc.message}") from None
    try:
        return from_document(document, file="<sweep>")
    except SpecErrors as exc:
        problems = []
        for error in exc.errors:
            blamed = list(values) if together else _blame(error.path, values)
            named = " with ".join(setting(p, values[p]) for p in blamed)
            at = f"{error.path}: " if error.path and error.path not in blamed else ""
            problems.append(f"{named}: {at}{error.message}")
        raise SweepInputError("\n".join(dict.fromkeys(problems))) from None


def _axes(grid: Mapping[str, Iterable[Any]] | None, base: dict[str, Any]) -> dict[str, list[Any]]:
    """The grid with canonical paths, each checked against the spec document."""
    axes: dict[str, list[Any]] = {}
    for key, values in (grid or {}).items():
        path = canonical_path(key)
        values = list(values)
        if not values:
            raise SweepInputError(f"--set {key}: no values")
        if path in axes:
            raise SweepInputError(f"--set {key}: {path} is set twice")
        try:
            check_key(base, path)
        except EditError as exc:
            raise SweepInputError(f"--set {key}: {exc.message}") from None
        axes[path] = values
    return axes


def plan(system_or_path: System | str | os.PathLike[str], *,
         scenario: str | Iterable[str] | None = None, duration: float | str | None = None,
         seeds: int = 5, grid: Mapping[str, Iterable[Any]] | None = None,
         base_seed: int = 0, stability: RecoveryOptions | bool | None = None) -> Plan:
    """Check and expand a sweep without running it; raises SweepInputError when it cannot run.

    ``stability`` (True, or ``RecoveryOptions``) makes it a stability sweep: every scenario
    must end its faults early enough to watch recovery, and each run measures it.
    """
    system = load_system(system_or_path)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise SweepInputError(f"--seeds must be a positive integer, got {seeds!r}")
    if isinstance(base_seed, bool) or not isinstance(base_seed, int) or base_seed < 0:
        raise SweepInputError(f"--seed must be a non-negative integer, got {base_seed!r}")
    scenarios = _scenarios(system, scenario)
    seconds = _duration(duration)
    recovery: RecoveryOptions | None = None
    if stability:
        options = stability if isinstance(stability, RecoveryOptions) else RecoveryOptions()
        for name in scenarios:
            recovery = resolve(system, name, options)
            check_room(system, name, seconds, recovery)
    base = to_document(system)
    axes = _axes(grid, base)
    check_size(axes, seeds, len(scenarios))
    points: list[Point] = []
    runs: list[RunTask] = []
    problems: dict[str, None] = {}
    alone: dict[tuple[str, str], str | None] = {}  # (path, value) -> its error on its own

    def fails_alone(key: str, value: Any) -> str | None:
        memo = (key, canonical(value))
        if memo not in alone:
            try:
                build_point(base, system, {key: value})
                alone[memo] = None
            except SweepInputError as exc:
                alone[memo] = str(exc)
        return alone[memo]

    combos = itertools.product(scenarios, *axes.values())
    for index, (scenario_name, *values) in enumerate(combos):
        assignments = dict(zip(axes, values, strict=True))
        try:
            point_system = build_point(base, system, assignments)
        except SweepInputError:
            # Name the values that are wrong on their own; else the combination is.
            own = [m for m in (fails_alone(k, v) for k, v in assignments.items()) if m]
            if not own:
                try:
                    build_point(base, system, assignments, together=True)
                except SweepInputError as exc:
                    own = [str(exc)]
            problems.update(dict.fromkeys(own))
            if len(problems) >= MAX_PROBLEMS:
                break
            continue
        params = ({SCENARIO: scenario_name} if len(scenarios) > 1 else {}) | assignments
        points.append(Point(index, params, point_system, scenario_name))
        for replication in range(seeds):
            runs.append(RunTask(
                run_id=run_id_for(params, scenario_name, replication), point=index,
                replication=replication, params=params,
                seed=derive_seed(base_seed, index, replication), system=point_system,
                scenario=scenario_name, duration=seconds, recovery=recovery))
    if problems:
        raise SweepInputError("\n".join(list(problems)[:MAX_PROBLEMS]))
    return Plan(system, axes, scenarios, seconds, seeds, base_seed, tuple(points), tuple(runs),
                recovery)


__all__ = ["MAX_RUNS", "PLAN_VERSION", "SCENARIO", "Plan", "Point", "RunTask", "build_point",
           "check_size", "derive_seed", "load_system", "plan", "planned_runs", "run_id_for"]
