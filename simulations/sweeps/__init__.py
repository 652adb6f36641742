"""Sweeps: one spec run many times, over a grid of parameter values and seeds, in parallel.

A sweep is planned before anything runs. ``--set PATH=V1,V2,...`` names a key path into the
spec document (``services.cart.replicas``, ``workload[0].rate``,
``services.frontend.endpoints.home.calls[0].timeout``) and the values to try, read as YAML
scalars (``2``, ``250ms``, ``true``, ``{exponential: 2ms}``). The grid is the cartesian product
of all ``--set``s (and of the scenarios, when several are given); each grid point runs
``seeds`` replications. Every point's document is the fully resolved ``to_document(system)``
with its values applied, validated up front by ``from_document``: a bad path or value is a
``SweepInputError`` naming the ``--set``, before a single run starts.

Seeds come from ``numpy.random.SeedSequence(base_seed)`` spawned by (point index, replication),
never from a worker's state, so a sweep gives the same numbers serially, on a process pool or on
a Dask cluster, with any number of workers. A run is identified by a run-id derived from its
parameters and replication.

Execution backends: ``serial`` (in this process), ``local`` (a process pool, the default) and
``dask`` (``dask.distributed``: a scheduler address, or a LocalCluster on loopback). A run ships
a ``RunTask`` out and only the summary dict (the ``simulate`` JSON object) back. The function a
worker executes is the module-level hook ``run_one``, read when a sweep starts, so tests and
tools can wrap it.

Robustness: with an output directory, each finished run is written atomically as it completes
(``OUT/runs/<run-id>.json``); Ctrl-C cancels what is pending and keeps what finished
(``SweepInterrupted``); ``resume=True`` runs only the run-ids missing on disk. The plan is stored
in ``OUT/plan.json`` and a different sweep is refused there unless ``force``. Tables are built
from the set of run records keyed by run-id, so no run is ever counted twice. A worker that
dies has its runs retried elsewhere (Dask: ``retries``; local: the pool is rebuilt).

Results: ``sweep()`` returns one row per run; ``summarize()`` gives per-point means with 95%
Student-t confidence intervals across seeds; ``plot()`` draws metric-vs-parameter (one
parameter) or heatmaps (two).

The resolved document repeats a few values, and a sweep keeps them consistent: a new
``services.S.replicas`` (or new ``zones``) drops the dumped placement unless it is set too, a
new ``orchestration.restart``/``readiness`` reaches the services that had the old one, and
``defaults.*`` is refused (already resolved into every call; set the call's own key).

``simulations.sweep`` is this module's ``sweep`` function (the module is named ``sweeps`` so
that the two never clash).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import hashlib
import itertools
import json
import logging
import math
import os
import re
import signal
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml
from faultmesh.model.files import atomic_path, write_atomic
from faultmesh.model.spec import SpecErrors, from_document, to_document
from faultmesh.model.spec.edit import parse_key
from faultmesh.model.spec.errors import format_path
from faultmesh.model.system import System
from faultmesh.model.units import parse_duration

from faultmesh import model

if TYPE_CHECKING:
    import pandas as pd

Backend = Literal["serial", "local", "dask"]
BACKENDS: tuple[str, ...] = ("serial", "local", "dask")
KeyPath = tuple[str | int, ...]
ProgressCallback = Callable[[int, int, dict[str, Any]], None]

PLAN_VERSION = 1
SCENARIO = "scenario"  # the grid dimension that several scenarios form
RUN_COLUMNS = ("run_id", "point", "replication", "seed")
MAX_POOL_RESTARTS = 3  # local backend: how often a pool whose worker died is rebuilt
DASK_RETRIES = 2
MAX_PROBLEMS = 10  # invalid grid points reported at once


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


# ---------------------------------------------------------------------------------------------
# Key paths and --set parsing
# ---------------------------------------------------------------------------------------------

def parse_path(text: str) -> KeyPath:
    """``services.a.calls[0].timeout`` -> ``('services', 'a', 'calls', 0, 'timeout')``.

    The grammar is ``model.spec.edit``'s, which repairs speak too.
    """
    try:
        return tuple(parse_key(text.strip()))
    except ValueError as exc:
        raise SweepInputError(f"{exc}: write keys separated by '.', list items as [index], "
                              "e.g. services.cart.endpoints.get.calls[0].timeout") from None


def split_values(text: str) -> list[str]:
    """Split ``V1,V2,...`` on the commas outside brackets and quotes."""
    items: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item.strip() for item in items]


def parse_value(text: str) -> Any:
    """One value, read as YAML (``2`` -> 2, ``250ms`` -> '250ms', ``true`` -> True)."""
    if not text:
        raise SweepInputError("empty value")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SweepInputError(f"cannot read {text!r} as a YAML value: {problem}") from None


def parse_set(text: str) -> tuple[str, list[Any]]:
    """``PATH=V1,V2,...`` -> (path, [values]); raises SweepInputError naming the --set."""
    path, sep, values = text.partition("=")
    if not sep:
        raise SweepInputError(f"--set {text}: expected PATH=V1,V2,... (no '=' found)")
    path = path.strip()
    try:
        parse_path(path)
        parsed = [parse_value(v) for v in split_values(values)]
    except SweepInputError as exc:
        raise SweepInputError(f"--set {text}: {exc}") from None
    if len(set(map(_canonical, parsed))) != len(parsed):
        raise SweepInputError(f"--set {text}: a value is repeated")
    return path, parsed


def parse_grid(sets: Iterable[str]) -> dict[str, list[Any]]:
    """Several ``--set`` texts -> an ordered grid ``{path: [values]}``."""
    grid: dict[str, list[Any]] = {}
    for text in sets:
        path, values = parse_set(text)
        key = format_path(parse_path(path))
        if key in grid:
            raise SweepInputError(f"--set {text}: {key} is already set by another --set")
        grid[key] = values
    return grid


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


# ---------------------------------------------------------------------------------------------
# Applying values to the resolved spec document
# ---------------------------------------------------------------------------------------------

_DEFAULTS_HINT = (
    "the document a sweep edits has every default resolved into the services and calls, so "
    "'defaults' has no effect there; set the value where it applies, e.g. "
    "services.SVC.endpoints.EP.calls[0].timeout or services.SVC.load_balancer")


def _describe(node: Any) -> str:
    if isinstance(node, dict):
        return "a mapping"
    if isinstance(node, list):
        return f"a list of {len(node)}"
    if isinstance(node, bool):
        return "a boolean"
    if isinstance(node, int | float):
        return "a number"
    return "a string" if isinstance(node, str) else "empty"


def check_path(document: Mapping[str, Any], path: KeyPath) -> None:
    """Raise SweepInputError unless ``path`` can be set in ``document``.

    Every step but the last must exist; the last may be a key the document omits (an unlimited
    ``queue``, a workload ``timeout``), which the spec validation then accepts or refuses.
    """
    if path and path[0] == "defaults":
        raise SweepInputError(_DEFAULTS_HINT)
    node: Any = document
    for depth, step in enumerate(path):
        where = format_path(path[:depth]) or "the spec"
        last = depth == len(path) - 1
        if isinstance(step, int):
            if not isinstance(node, list):
                raise SweepInputError(f"{where} is {_describe(node)}, not a list: [{step}] "
                                      "does not apply")
            if step >= len(node):
                raise SweepInputError(f"{where} has {len(node)} item"
                                      f"{'s' if len(node) != 1 else ''}; [{step}] is out of range")
            node = node[step]
            continue
        if not isinstance(node, dict):
            raise SweepInputError(f"{where} is {_describe(node)}, not a mapping: no key {step!r}")
        if step not in node:
            if last:
                return
            close = difflib.get_close_matches(step, [str(k) for k in node], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else \
                f"; it has {', '.join(map(repr, list(node)[:12]))}" if node else ""
            raise SweepInputError(f"unknown key {step!r} in {where}{hint}")
        node = node[step]


def _assign(document: dict[str, Any], path: KeyPath, value: Any) -> None:
    node: Any = document
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = copy.deepcopy(value)


def _get(document: Mapping[str, Any], path: KeyPath) -> Any:
    node: Any = document
    for step in path:
        node = node[step]
    return node


def apply_values(base: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the resolved document ``base`` with ``{path: value}`` applied.

    Values the resolved document repeats are kept consistent: a new ``services.S.replicas``
    drops that service's dumped ``placement`` (replicas are spread over the zones again) unless
    the placement is set too; new ``zones`` do the same for every service; a new
    ``orchestration.restart``/``readiness`` reaches every service that had the old one.
    """
    document = copy.deepcopy(dict(base))
    paths = {key: parse_path(key) for key in values}
    placed = {p[1] for p in paths.values() if p[:1] == ("services",) and p[2:3] == ("placement",)}
    for key, path in paths.items():
        check_path(document, path)
        value = values[key]
        if path[:1] == ("orchestration",) and len(path) >= 2 and path[1] in ("restart",
                                                                               "readiness"):
            old = _get(document, path[:2])
            for service in document.get("services", {}).values():
                if isinstance(service, dict) and service.get(path[1]) == old:
                    _assign(service, path[1:], value)
        _assign(document, path, value)
        services = document.get("services", {})
        if path[:1] == ("services",) and path[2:] == ("replicas",) and path[1] not in placed:
            services.get(path[1], {}).pop("placement", None)
        if path == ("zones",):
            for name, service in services.items():
                if name not in placed and isinstance(service, dict):
                    service.pop("placement", None)
    return document


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Point:
    index: int
    params: dict[str, Any]  # grid path (or "scenario") -> value
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

    @property
    def params(self) -> list[str]:
        """The grid's dimensions in order (``scenario`` first when several are swept)."""
        return ([SCENARIO] if len(self.scenarios) > 1 else []) + list(self.grid)

    def to_json(self) -> dict[str, Any]:
        """What identifies the sweep (stored as OUT/plan.json and compared on resume)."""
        return json.loads(json.dumps({
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
    digest = hashlib.sha256(_canonical({"params": dict(params), "scenario": scenario})
                            .encode()).hexdigest()
    return f"{digest[:12]}-r{replication}"


def _load(system_or_path: System | str | os.PathLike[str]) -> System:
    if isinstance(system_or_path, System):
        return system_or_path
    return model.load(system_or_path)


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


def _setting(path: str, value: Any) -> str:
    shown = value if isinstance(value, str) else yaml.safe_dump(
        value, default_flow_style=True, width=10**6).strip().removesuffix("\n...")
    return f"--set {path}={shown}"


def _blame(error_path: str, assignments: Mapping[str, Any]) -> list[str]:
    """The --set paths an error at ``error_path`` is about (all of them if none matches)."""
    hit = [p for p in assignments
           if error_path == p or error_path.startswith((p + ".", p + "["))
           or p.startswith((error_path + ".", error_path + "["))]
    return hit or list(assignments)


def _build_point(base: dict[str, Any], system: System, values: dict[str, Any], *,
                 together: bool = False) -> System:
    """The System of one grid point; errors name the --set they are about, or (``together``:
    the values are fine one by one) the whole combination."""
    if not values:
        return system
    document = apply_values(base, values)
    try:
        return from_document(document, file="<sweep>")
    except SpecErrors as exc:
        problems = []
        for error in exc.errors:
            blamed = list(values) if together else _blame(error.path, values)
            named = " with ".join(_setting(p, values[p]) for p in blamed)
            at = f"{error.path}: " if error.path and error.path not in blamed else ""
            problems.append(f"{named}: {at}{error.message}")
        raise SweepInputError("\n".join(dict.fromkeys(problems))) from None


def plan(system_or_path: System | str | os.PathLike[str], *,
         scenario: str | Iterable[str] | None = None, duration: float | str | None = None,
         seeds: int = 5, grid: Mapping[str, Iterable[Any]] | None = None,
         base_seed: int = 0) -> Plan:
    """Check and expand a sweep without running it; raises SweepInputError when it cannot run."""
    system = _load(system_or_path)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise SweepInputError(f"--seeds must be a positive integer, got {seeds!r}")
    if isinstance(base_seed, bool) or not isinstance(base_seed, int) or base_seed < 0:
        raise SweepInputError(f"--seed must be a non-negative integer, got {base_seed!r}")
    scenarios = _scenarios(system, scenario)
    seconds = _duration(duration)
    axes: dict[str, list[Any]] = {}
    for key, values in (grid or {}).items():
        path = format_path(parse_path(key))
        values = list(values)
        if not values:
            raise SweepInputError(f"--set {key}: no values")
        if path in axes:
            raise SweepInputError(f"--set {key}: {path} is set twice")
        axes[path] = values
    base = to_document(system)
    for key in axes:
        try:
            check_path(base, parse_path(key))
        except SweepInputError as exc:
            raise SweepInputError(f"--set {key}: {exc}") from None
    points: list[Point] = []
    runs: list[RunTask] = []
    problems: dict[str, None] = {}
    alone: dict[tuple[str, str], str | None] = {}  # (path, value) -> its error on its own

    def fails_alone(key: str, value: Any) -> str | None:
        memo = (key, _canonical(value))
        if memo not in alone:
            try:
                _build_point(base, system, {key: value})
                alone[memo] = None
            except SweepInputError as exc:
                alone[memo] = str(exc)
        return alone[memo]

    combos = itertools.product(scenarios, *axes.values())
    for index, (scenario_name, *values) in enumerate(combos):
        assignments = dict(zip(axes, values, strict=True))
        try:
            point_system = _build_point(base, system, assignments)
        except SweepInputError:
            # Name the values that are wrong on their own; else the combination is.
            own = [m for m in (fails_alone(k, v) for k, v in assignments.items()) if m]
            if not own:
                try:
                    _build_point(base, system, assignments, together=True)
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
                scenario=scenario_name, duration=seconds))
    if problems:
        raise SweepInputError("\n".join(list(problems)[:MAX_PROBLEMS]))
    return Plan(system, axes, scenarios, seconds, seeds, base_seed, tuple(points), tuple(runs))


# ---------------------------------------------------------------------------------------------
# Running: the hook, and the backends
# ---------------------------------------------------------------------------------------------


def simulate_run(task: RunTask) -> dict[str, Any]:
    """Run one task with the simulation engine; return its JSON summary."""
    from faultmesh import simulations
    run = simulations.simulate(task.system, task.scenario, duration=task.duration,
                               seed=task.seed)
    # Plain data only (what JSON holds), whatever types the engine used.
    return json.loads(json.dumps(run.summary, default=_plain_scalar))


def _plain_scalar(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


# The function every backend executes for a run. Read when a sweep starts and shipped to the
# workers with each run, so replacing it (tests, instrumentation) works on every backend.
run_one: Callable[[RunTask], dict[str, Any]] = simulate_run

Outcome = tuple[RunTask, dict[str, Any] | BaseException]


class _Serial:
    """Runs in this process, one after another (debugging, notebooks, the bench baseline)."""

    def __init__(self, runner: Callable[[RunTask], dict[str, Any]]):
        self.runner = runner

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def results(self, tasks: list[RunTask]) -> Iterator[Outcome]:
        for task in tasks:
            try:
                yield task, self.runner(task)
            except Exception as exc:  # a run's failure is reported, the sweep goes on
                exc.__notes__ = [traceback.format_exc()]
                yield task, exc

    def abort(self) -> None:
        return None


def _ignore_sigint() -> None:
    # Ctrl-C is the parent's to handle: it cancels, stops the pool and keeps finished runs.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_with_trace(runner: Callable[[RunTask], dict[str, Any]], task: RunTask) -> Any:
    try:
        return runner(task)
    except Exception as exc:
        exc.__notes__ = [traceback.format_exc()]
        raise


class _Local:
    """A process pool on this machine; a pool whose worker died is rebuilt and its runs retried.

    Workers are forked from a clean forkserver (never from this process, which may hold
    threads: the progress bar, Dask) and ignore SIGINT.
    """

    def __init__(self, runner: Callable[[RunTask], dict[str, Any]], workers: int):
        self.runner, self.workers = runner, workers
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> _Local:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.abort()
        elif self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def _new_pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(
            ["faultmesh.simulations.engine", "faultmesh.simulations.sweeps"])
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=_ignore_sigint)

    def results(self, tasks: list[RunTask]) -> Iterator[Outcome]:
        remaining = {task.run_id: task for task in tasks}
        restarts = 0
        while remaining:
            self.pool = self._new_pool()
            futures: dict[Future[Any], RunTask] = {
                self.pool.submit(_run_with_trace, self.runner, task): task
                for task in remaining.values()}
            pending = set(futures)
            broken = False
            while pending and not broken:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    task = futures[future]
                    try:
                        result: dict[str, Any] | BaseException = future.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    except Exception as exc:
                        result = exc
                    del remaining[task.run_id]
                    yield task, result
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
            if broken:
                restarts += 1
                if restarts > MAX_POOL_RESTARTS:
                    for task in list(remaining.values()):
                        del remaining[task.run_id]
                        yield task, RuntimeError(
                            f"a worker process died while running it ({restarts} times in "
                            "this sweep); giving up on the runs left")

    def abort(self) -> None:
        pool, self.pool = self.pool, None
        if pool is None:
            return
        processes = list(getattr(pool, "_processes", {}).values())  # stop running runs now
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)


def _ignore_sigint_plugin() -> Any:
    """A Dask worker plugin by which the worker ignores SIGINT (for local clusters)."""
    from dask.distributed import WorkerPlugin

    class IgnoreSigint(WorkerPlugin):  # type: ignore[misc]
        def setup(self, worker: Any) -> None:
            with contextlib.suppress(ValueError):  # not the main thread: nothing to do
                _ignore_sigint()

    return IgnoreSigint()


class _Dask:
    """dask.distributed: a scheduler at ``address``, or a LocalCluster on loopback.

    Runs are submitted with ``pure=False`` (every run is distinct work) and ``retries``; a run
    on a worker that dies is rescheduled elsewhere by the scheduler. The workers of a cluster
    given by address need faultmesh installed (the runs name its functions).
    """

    def __init__(self, runner: Callable[[RunTask], dict[str, Any]], workers: int,
                 address: str | None):
        self.runner, self.workers, self.address = runner, workers, address
        self.client: Any = None
        self.cluster: Any = None
        self.futures: list[Any] = []

    def __enter__(self) -> _Dask:
        from dask.distributed import Client, LocalCluster

        if self.address:
            try:
                self.client = Client(self.address, timeout="10s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise SweepInputError(
                    f"--scheduler {self.address}: cannot connect ({exc})") from None
            return self
        try:
            self.cluster = LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, silence_logs=logging.ERROR,
                # No dashboard; its health endpoint on any free loopback port (not 8787).
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
            self.client = Client(self.cluster)
            # Its workers share our terminal: Ctrl-C is ours to handle, not theirs to print.
            self.client.register_plugin(_ignore_sigint_plugin(), name="faultmesh-ignore-sigint")
        except BaseException:
            self.__exit__(None)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.abort()
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def results(self, tasks: list[RunTask]) -> Iterator[Outcome]:
        from dask.distributed import as_completed

        by_key: dict[str, RunTask] = {}
        for task in tasks:
            future = self.client.submit(_run_with_trace, self.runner, task, pure=False,
                                        retries=DASK_RETRIES, key=f"faultmesh-run-{task.run_id}"
                                        f"-{os.urandom(4).hex()}")
            by_key[future.key] = task
            self.futures.append(future)
        for future in as_completed(self.futures):
            task = by_key[future.key]
            if future.status == "error":
                yield task, future.exception()
            else:
                yield task, future.result()
            future.release()

    def abort(self) -> None:
        if self.client is not None and self.futures:
            self.client.cancel(self.futures, force=True)


# ---------------------------------------------------------------------------------------------
# The output directory
# ---------------------------------------------------------------------------------------------


OUTPUT_GLOBS = ("runs.parquet", "table.parquet", "metric_vs_*.png", "heatmap_*.png")


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
        write_atomic(self.runs_dir / f"{record['run_id']}.json",
                     json.dumps(record, indent=1).encode())


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def record_for(task: RunTask, summary: Mapping[str, Any]) -> dict[str, Any]:
    """A run's record: its identity in the sweep, then the engine's summary."""
    return {"run_id": task.run_id, "point": task.point, "replication": task.replication,
            "params": task.params, **summary, "seed": task.seed}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def metrics_of(summary: Mapping[str, Any]) -> dict[str, float]:
    """The flat numeric metrics of one run: ``entry/availability``, ``entry/latency_p99_s``,
    ``entry/timeout_count``, ``service/utilization``, ``caller->callee/breaker_opens``, ...
    (missing values are NaN)."""
    row: dict[str, float] = {}
    for entry, values in (summary.get("entries") or {}).items():
        for key, value in values.items():
            if key == "latency_s" and isinstance(value, Mapping):
                for stat, x in value.items():
                    row[f"{entry}/latency_{stat}_s"] = _nan(x)
            elif key == "outcomes" and isinstance(value, Mapping):  # error, timeout, ...
                for outcome, x in value.items():
                    if outcome != "ok":  # already there as ``ok``
                        row[f"{entry}/{outcome}_count"] = _nan(x)
            elif _number(value) is not None or value is None:
                row[f"{entry}/{key}"] = _nan(value)
    for service, values in (summary.get("services") or {}).items():
        for key, value in values.items():
            if _number(value) is not None or value is None:
                row[f"{service}/{key}"] = _nan(value)
    for edge, breaker in (summary.get("breakers") or {}).items():
        transitions = breaker.get("transitions") or []
        row[f"{edge}/breaker_opens"] = float(sum(1 for t in transitions if t[-1] == "open"))
    properties = summary.get("properties") or []
    row["properties_violated"] = float(sum(1 for p in properties
                                           if p.get("status") == "violated"))
    return row


def _nan(value: Any) -> float:
    number = _number(value)
    return math.nan if number is None else number


def _label(value: Any) -> Any:
    """A table cell for a parameter value: scalars as they are, structures as YAML flow."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()


def runs_frame(records: Iterable[Mapping[str, Any]], params: list[str]) -> pd.DataFrame:
    """One row per run, in grid order: ids, parameters, then metrics."""
    import pandas as pd

    rows = []
    for record in sorted(records, key=lambda r: (r["point"], r["replication"])):
        row: dict[str, Any] = {key: record[key] for key in RUN_COLUMNS}
        row["scenario"] = record.get("scenario")
        row.update({p: _label(record["params"].get(p)) for p in params if p != SCENARIO})
        row.update(metrics_of(record))
        rows.append(row)
    frame = pd.DataFrame(rows)
    for p in params:
        if p in frame and p != SCENARIO:
            kinds = {type(v) for v in frame[p] if v is not None}
            if len(kinds) > 1 and not kinds <= {int, float}:
                frame[p] = frame[p].map(lambda v: v if v is None else str(v))
    frame.attrs["params"] = list(params)
    return frame


def _is_metric(column: str) -> bool:
    return "/" in column or column == "properties_violated"


@cache
def t_quantile(dof: int, level: float = 0.95) -> float:
    """The two-sided Student-t critical value: P(|T| < t) = level with ``dof`` degrees."""
    if dof < 1:
        return math.nan

    def central(t: float) -> float:  # P(|T| < t), Abramowitz & Stegun 26.7.3-4
        theta = math.atan(t / math.sqrt(dof))
        s, c2 = math.sin(theta), math.cos(theta) ** 2
        if dof % 2 == 0:
            term = total = 1.0
            for k in range(1, (dof - 2) // 2 + 1):
                term *= c2 * (2 * k - 1) / (2 * k)
                total += term
            return s * total
        total = 0.0
        if dof > 1:
            term = total = math.cos(theta)
            for k in range(1, (dof - 3) // 2 + 1):
                term *= c2 * (2 * k) / (2 * k + 1)
                total += term
        return 2 / math.pi * (theta + s * total)

    lo, hi = 0.0, 1.0
    while central(hi) < level:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if central(mid) < level:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


def summarize(df: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per grid point: ``runs``, and for each metric ``<metric>_mean`` and ``<metric>_ci95``.

    ``_ci95`` is the half-width of the Student-t confidence interval of the mean across the
    point's seeds (NaN with fewer than two runs; missing values are left out).
    """
    import pandas as pd

    metrics = [c for c in df.columns if _is_metric(c)]
    keys = [c for c in df.columns if not _is_metric(c) and c not in RUN_COLUMNS]
    suffix = f"ci{round(level * 100)}"
    group_by = "point" if "point" in df.columns else keys
    rows = []
    for _, group in df.groupby(group_by, sort=True, dropna=False):
        row: dict[str, Any] = {}
        if "point" in df.columns:
            row["point"] = group["point"].iloc[0]
        row.update({k: group[k].iloc[0] for k in keys})
        row["runs"] = len(group)
        for metric in metrics:
            values = group[metric].astype(float).dropna()
            n = len(values)
            row[f"{metric}_mean"] = float(values.mean()) if n else math.nan
            row[f"{metric}_{suffix}"] = (t_quantile(n - 1, level) * float(values.std(ddof=1))
                                         / math.sqrt(n)) if n >= 2 else math.nan
            if metric == "properties_violated":
                row["runs_violating"] = int((values > 0).sum())
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["params"] = list(df.attrs.get("params", []))
    return table


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", text)


def _entries(table: pd.DataFrame) -> list[str]:
    suffix = "/availability_mean"
    return [c[: -len(suffix)] for c in table.columns if c.endswith(suffix)]


def plot(table: pd.DataFrame, params: list[str], out: str | os.PathLike[str]) -> list[Path]:
    """Availability and p99 latency against the sweep's parameters, as PNG files in ``out``.

    One parameter: ``metric_vs_<param>.png``, each entry a line with 95% CI error bars.
    Two parameters: ``heatmap_<p1>_vs_<p2>.png``, mean availability and p99 per cell.
    Other grids draw nothing.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = _entries(table)[:6]
    if not entries or len(params) not in (1, 2):
        return []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = (("availability", "availability"), ("latency_p99_s", "p99 latency (s)"))
    if len(params) == 1:
        param = params[0]
        values = list(table[param])  # one row per point, in grid order
        numeric = all(_number(v) is not None for v in values)
        xs = [float(v) for v in values] if numeric else list(range(len(values)))
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), squeeze=False)
        for ax, (metric, label) in zip(axes[0], metrics, strict=True):
            for entry in entries:
                means = list(table[f"{entry}/{metric}_mean"])
                cis = [0.0 if math.isnan(c) else c for c in table[f"{entry}/{metric}_ci95"]]
                # An interval is drawn within the metric's range (availability <= 1, >= 0).
                top = 1.0 if metric == "availability" else math.inf
                yerr = [[min(c, max(m, 0.0)) for m, c in zip(means, cis, strict=True)],
                        [min(c, max(top - m, 0.0)) for m, c in zip(means, cis, strict=True)]]
                ax.errorbar(xs, means, yerr=yerr, marker="o", capsize=4, label=entry)
            ax.set_xlabel(param)
            ax.set_ylabel(label)
            if not numeric or all(isinstance(v, int) for v in values):
                ax.set_xticks(xs, [str(v) for v in values])
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize="small")
        fig.suptitle(f"{label_of(table)}: mean with 95% CI across seeds")
        path = out / f"metric_vs_{_slug(param)}.png"
    else:
        rows_p, cols_p = params
        row_values = list(dict.fromkeys(table[rows_p]))
        col_values = list(dict.fromkeys(table[cols_p]))
        fig, axes = plt.subplots(len(entries), 2, figsize=(11, 3.6 * len(entries)),
                                 squeeze=False)
        for i, entry in enumerate(entries):
            for ax, (metric, label) in zip(axes[i], metrics, strict=True):
                grid = np.full((len(row_values), len(col_values)), np.nan)
                for _, r in table.iterrows():
                    grid[row_values.index(r[rows_p]), col_values.index(r[cols_p])] = \
                        r[f"{entry}/{metric}_mean"]
                cmap = "RdYlGn" if metric == "availability" else "viridis_r"
                image = ax.imshow(grid, cmap=cmap, aspect="auto")
                fig.colorbar(image, ax=ax, label=label)
                ax.set_xticks(range(len(col_values)), [str(v) for v in col_values])
                ax.set_yticks(range(len(row_values)), [str(v) for v in row_values])
                ax.set_xlabel(cols_p)
                ax.set_ylabel(rows_p)
                ax.set_title(f"{entry}: {label}", fontsize="medium")
                for (r, c), value in np.ndenumerate(grid):
                    if not math.isnan(value):
                        red, green, blue, _ = image.cmap(image.norm(value))
                        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                        text = f"{value:.4f}" if metric == "availability" else f"{value:.3g}"
                        ax.text(c, r, text, ha="center", va="center", fontsize="small",
                                color="white" if dark else "black")
        fig.suptitle(f"{label_of(table)}: mean across seeds")
        path = out / f"heatmap_{_slug(rows_p)}_vs_{_slug(cols_p)}.png"
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return [path]


def label_of(table: pd.DataFrame) -> str:
    return str(table.attrs.get("system", "sweep"))


# ---------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------


class _Progress:
    """A rich progress bar with ETA on stderr, or a user callback, or nothing."""

    def __init__(self, setting: bool | ProgressCallback | None, total: int, done: int,
                 title: str):
        self.callback = setting if callable(setting) else None
        self.bar: Any = None
        self.total, self.done = total, done
        if setting is True:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TextColumn("runs"), TimeElapsedColumn(),
                                TextColumn("eta"), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=False)
            self.task = self.bar.add_task(title, total=total, completed=done)

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def advance(self, record: dict[str, Any]) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.advance(self.task)
        if self.callback is not None:
            self.callback(self.done, self.total, record)


def _executor(backend: str, runner: Callable[[RunTask], dict[str, Any]], workers: int | None,
              scheduler: str | None, todo: int) -> _Serial | _Local | _Dask:
    if backend not in BACKENDS:
        raise SweepInputError(f"--backend takes {', '.join(BACKENDS)}, not {backend!r}")
    if scheduler and backend != "dask":
        raise SweepInputError("--scheduler needs --backend dask")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise SweepInputError(f"--workers must be a positive integer, got {workers!r}")
    count = workers or os.cpu_count() or 1
    if backend == "serial":
        return _Serial(runner)
    if backend == "local":
        return _Local(runner, max(1, min(count, todo)))
    return _Dask(runner, count, scheduler)


@dataclass
class SweepResult:
    """Everything a finished sweep produced (``sweep()`` returns its ``runs`` frame)."""

    plan: Plan
    records: dict[str, dict[str, Any]]
    runs: pd.DataFrame
    table: pd.DataFrame
    executed: int
    files: list[Path] = field(default_factory=list)


def run_sweep(system_or_path: System | str | os.PathLike[str], *,
              scenario: str | Iterable[str] | None = None, duration: float | str | None = None,
              seeds: int = 5, grid: Mapping[str, Iterable[Any]] | None = None,
              base_seed: int = 0, backend: Backend = "local", workers: int | None = None,
              scheduler: str | None = None, out: str | os.PathLike[str] | None = None,
              resume: bool = False, force: bool = False,
              progress: bool | ProgressCallback | None = True, plots: bool = True) -> SweepResult:
    """``sweep()`` with everything it made: plan, records, runs frame, table, files written."""
    the_plan = plan(system_or_path, scenario=scenario, duration=duration, seeds=seeds,
                    grid=grid, base_seed=base_seed)
    if resume and out is None:
        raise SweepInputError("--resume needs --out (the directory of the sweep to resume)")
    _executor(backend, run_one, workers, scheduler, 1)  # options are checked before any write
    store = RunStore(Path(out), the_plan.to_json(), resume=resume, force=force) \
        if out is not None else None
    wanted = {task.run_id for task in the_plan.runs}
    records: dict[str, dict[str, Any]] = store.load(store.run_ids() & wanted) if store else {}
    todo = [task for task in the_plan.runs if task.run_id not in records]
    failures: dict[str, str] = {}
    executor = _executor(backend, run_one, workers, scheduler, len(todo))
    title = f"sweep {the_plan.system.name}"
    try:
        # Workers first (a cluster may take seconds to start, or fail to connect), then the bar.
        with executor if todo else contextlib.nullcontext(), \
                _Progress(progress, len(the_plan.runs), len(records), title) as bar:
            for task, result in executor.results(todo) if todo else ():
                if isinstance(result, BaseException):
                    failures[task.run_id] = _explain(result)
                elif task.run_id not in records:  # a retried duplicate is dropped
                    record = record_for(task, result)
                    if store is not None:
                        store.save(record)
                    records[task.run_id] = record
                    bar.advance(record)
    except KeyboardInterrupt:
        # Leaving the executor on Ctrl-C has cancelled what was pending and stopped workers.
        raise SweepInterrupted(len(records), len(the_plan.runs),
                               store.out if store else None, records) from None
    if failures:
        raise SweepFailed(failures, len(the_plan.runs))
    # The table comes from the run records on disk when there is an OUT: one per run-id.
    if store is not None:
        records = store.load(wanted)
    runs = runs_frame(records.values(), the_plan.params)
    runs.attrs["system"] = the_plan.system.name
    table = summarize(runs)
    table.attrs["system"] = the_plan.system.name
    files: list[Path] = []
    if store is not None:
        for name, frame in (("runs.parquet", runs), ("table.parquet", table)):
            write_atomic(store.out / name, _parquet_bytes(frame))
            files.append(store.out / name)
        if plots:
            files.extend(plot(table, the_plan.params, store.out))
    return SweepResult(the_plan, records, runs, table, len(todo), files)


def _explain(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", None)
    if notes:
        return "".join(notes).rstrip()
    return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    plain = frame.copy()
    plain.attrs = {}
    plain.to_parquet(buffer, index=False)
    return buffer.getvalue()


def sweep(system_or_path: System | str | os.PathLike[str], *,
          scenario: str | Iterable[str] | None = None, duration: float | str | None = None,
          seeds: int = 5, grid: Mapping[str, Iterable[Any]] | None = None, base_seed: int = 0,
          backend: Backend = "local", workers: int | None = None, scheduler: str | None = None,
          out: str | os.PathLike[str] | None = None, resume: bool = False, force: bool = False,
          progress: bool | ProgressCallback | None = True) -> pd.DataFrame:
    """Run a spec over a grid of parameter values times ``seeds`` replications.

    ``grid`` maps key paths into the spec to the values to try, e.g.
    ``{"services.cart.replicas": [1, 2, 3], "workload[0].rate": ["100/s", "200/s"]}``;
    ``scenario`` is a scenario name or several (then a grid dimension of its own). Returns one
    row per run: ``run_id``, ``point``, ``replication``, ``seed``, ``scenario``, the parameters,
    then metrics (``<entry>/availability``, ``<entry>/latency_p99_s``, ``<service>/utilization``,
    ...). ``summarize(df)`` gives the means with confidence intervals. ``backend`` is
    ``"local"`` (process pool), ``"dask"`` (a LocalCluster, or the cluster at ``scheduler``) or
    ``"serial"``; results do not depend on it. With ``out``, runs are kept on disk as they
    finish, with ``runs.parquet``, ``table.parquet`` and plots at the end; ``resume`` runs only
    the missing ones. ``progress``: a bar on stderr (True), nothing (False), or a callback
    ``(done, total, record)``.
    """
    return run_sweep(system_or_path, scenario=scenario, duration=duration, seeds=seeds,
                     grid=grid, base_seed=base_seed, backend=backend, workers=workers,
                     scheduler=scheduler, out=out, resume=resume, force=force,
                     progress=progress).runs


__all__ = [
    "BACKENDS",
    "Plan",
    "Point",
    "RunStore",
    "RunTask",
    "SweepFailed",
    "SweepInputError",
    "SweepInterrupted",
    "SweepResult",
    "apply_values",
    "derive_seed",
    "metrics_of",
    "parse_grid",
    "parse_path",
    "parse_set",
    "plan",
    "plot",
    "run_id_for",
    "run_one",
    "run_sweep",
    "runs_frame",
    "simulate_run",
    "summarize",
    "sweep",
    "t_quantile",
]
