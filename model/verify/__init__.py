"""Static verification: each property kind is decided by its own checker module.

A checker is a function ``check(system, prop, deadline) -> Verdict`` registered for a property
kind with ``@checker("kind")``. ``deadline`` is a ``Deadline`` (seconds left, for Z3's timeout),
one for the whole ``verify`` call: every property draws on the same budget, so ``timeout``
bounds all of verify. A checker that runs out of time answers ``deadline.out_of_time(...)``,
``unknown`` and never ``holds``, worded the same for every kind; an ``OutOfTime`` raised by a
loop's ``deadline.check()`` is turned into that answer here. Adding a property means
adding one module here and importing it below; nothing else changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import wraps

from faultmesh.model import properties as P
from faultmesh.model.collector import quiet_collector
from faultmesh.model.system import DEFAULT_ZONE, System
from faultmesh.model.verify.deadline import Deadline, OutOfTime, out_of_time
from faultmesh.model.verify.verdict import Counterexample, Repair, Report, Verdict

Checker = Callable[[System, P.Property, Deadline], Verdict]
CHECKERS: dict[str, Checker] = {}


def checker(kind: str) -> Callable[[Checker], Checker]:
    def register(fn: Checker) -> Checker:
        @wraps(fn)
        def decide(system: System, prop: P.Property, deadline: Deadline) -> Verdict:
            try:
                return fn(system, prop, deadline)
            except OutOfTime:
                return out_of_time(prop, deadline)

        CHECKERS[kind] = decide
        return decide

    return register


def properties_to_verify(
    system: System, *, kinds: Iterable[str] | None = None, failures: int | None = None
) -> list[P.Property]:
    """The spec's static properties plus the always-on ones, narrowed and adjusted."""
    chosen: list[P.Property] = [*P.ALWAYS_ON,
                                *(p for p in system.properties if p.kind in P.STATIC_KINDS)]
    if failures is not None:
        chosen = [replace(p, failures=failures) if isinstance(p, P.Survives | P.Capacity) else p
                  for p in chosen]
        if not any(isinstance(p, P.Survives) for p in chosen):
            # As the loader does for spec properties: the implicit zone is not a failure.
            implicit_zone = system.zones == (DEFAULT_ZONE,)
            chosen.append(P.Survives(failures=failures,
                                     of=("instance",) if implicit_zone else P.FAILURE_KINDS))
    if kinds is not None:
        wanted = set(kinds)
        chosen = [p for p in chosen if p.kind in wanted or p.name in wanted]
    return chosen


def verify(
    system: System,
    properties: Iterable[P.Property] | None = None,
    *,
    kinds: Iterable[str] | None = None,
    failures: int | None = None,
    timeout: float = 60.0,
    deadline: Deadline | None = None,
) -> Report:
    """Decide each property within one budget of ``timeout`` seconds for the whole call.

    Every property draws on the same ``Deadline`` (``deadline`` if given, else a new one of
    ``timeout`` seconds); one that starts after it is spent is ``unknown`` (``out_of_time``).
    """
    _load_checkers()
    budget = deadline if deadline is not None else Deadline(timeout)
    props = list(properties) if properties is not None else properties_to_verify(
        system, kinds=kinds, failures=failures)
    # The checks build hundreds of thousands of long-lived objects on a large system (loads,
    # call sites, service models) and little cyclic garbage: with the collector's default
    # thresholds its full passes walked them over and over (``model.collector``).
    with quiet_collector():
        verdicts = _decide_each(system, props, budget)
    return Report(system.name, tuple(verdicts))


def _decide_each(system: System, props: list[P.Property], budget: Deadline) -> list[Verdict]:
    verdicts = []
    for prop in props:
        fn = CHECKERS.get(prop.kind)
        start = time.perf_counter()
        if fn is None:
            verdict = Verdict(prop.name, prop.kind, "unknown",
                              f"no static checker for {prop.kind!r} yet")
        elif budget.expired():
            verdict = out_of_time(prop, budget)
        else:
            verdict = fn(system, prop, budget)
        verdicts.append(replace(verdict, seconds=time.perf_counter() - start))
    return verdicts


def _load_checkers() -> None:
    # Importing a checker module registers it. Imported lazily: Z3 loads only when verifying.
    import importlib

    for module in ("wellformed", "survives", "capacity", "timeouts", "retries", "staleness",
                   "breaker", "overload"):
        try:
            importlib.import_module(f"faultmesh.model.verify.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"faultmesh.model.verify.{module}":
                raise


__all__ = ["CHECKERS", "Counterexample", "Deadline", "OutOfTime", "Repair", "Report", "Verdict",
           "checker", "properties_to_verify", "verify"]
