"""Building the step forms and the traffic forms of a spec: part of ``Builder``.

Steps: a call (with its ``fallback``), ``parallel``, ``one_of`` (weights), ``group`` (one
probability for its calls, fanned out or in order). Traffic: a ``mix`` (one rate split over
entries by weight) and ``sessions`` (a closed workload). ``Builder`` (``model.spec.build``)
inherits these, and provides the call, reference and profile resolution they use.
"""

from __future__ import annotations

from typing import Any

from faultmesh.model.spec import schema as S
from faultmesh.model.spec.yaml_source import Path
from faultmesh.model.system import (
    Call,
    Fallback,
    Group,
    OneOf,
    ParallelCalls,
    RatePoint,
    Sessions,
    Step,
    Workload,
)


class StepsBuilder:
    """The step- and traffic-form part of ``Builder`` (see the module docstring)."""

    spec: S.Spec

    def fail(self, path: Path, message: str, *, key: bool = False) -> None:
        raise NotImplementedError

    def check_ref(self, ref: str, path: Path) -> bool:
        raise NotImplementedError

    def call(self, item: Any, path: Path) -> Call | None:
        raise NotImplementedError

    def profile(self, spec: Any, path: Path) -> tuple[float, tuple[RatePoint, ...]]:
        raise NotImplementedError

    def steps(self, items: list[Any], path: Path) -> tuple[Step, ...]:
        steps: list[Step] = []
        for i, item in enumerate(items):
            step = self.step(item, (*path, i))
            if step is not None:
                steps.append(step)
        return tuple(steps)

    def step(self, item: Any, path: Path) -> Step | None:
        """One item of ``calls``: a call (maybe with a fallback), parallel, one_of or group."""
        if isinstance(item, S.ParallelSpec):
            members = self.members(item.parallel, (*path, "parallel"))
            return None if members is None else ParallelCalls(members)
        if isinstance(item, S.OneOfSpec):
            branches = self.members(item.one_of, (*path, "one_of"))
            if branches is None:
                return None
            weights = tuple(1.0 if isinstance(b, str) else b.weight for b in item.one_of)
            return OneOf(branches, weights)
        if isinstance(item, S.GroupSpec):
            body = item.group
            key = "parallel" if body.parallel is not None else "calls"
            calls = self.members(getattr(body, key), (*path, "group", key))
            if calls is None:
                return None
            return Group(body.probability, calls, parallel=key == "parallel")
        primary = self.call(item, path)
        if primary is None or isinstance(item, str) or item.fallback is None:
            return primary
        fallback = self.call(item.fallback, (*path, "fallback"))
        if fallback is None:
            return None
        if fallback.target == primary.target:
            self.fail((*path, "fallback"), f"the fallback calls {primary.target!r} again, the "
                      "call it stands in for; a fallback is another endpoint (to try the same "
                      "one again, use retries)")
            return None
        return Fallback(primary, fallback)

    def members(self, items: list[Any], path: Path) -> tuple[Call, ...] | None:
        """The calls of a parallel, one_of or group list (fallbacks are single steps only)."""
        calls = []
        for j, c in enumerate(items):
            if not isinstance(c, str) and c.fallback is not None:
                self.fail((*path, j, "fallback"), "a fallback is a step of its own: put the "
                          "call with its fallback directly in 'calls'")
                continue
            calls.append(self.call(c, (*path, j)))
        if len(calls) != len(items) or any(c is None for c in calls):
            return None
        return tuple(calls)  # type: ignore[arg-type]

    def mix(self, w: S.WorkloadSpec, path: Path) -> list[Workload]:
        """One rate split over entries by weight: a Workload item per entry."""
        items: list[Workload] = []
        assert w.mix is not None
        total = sum(w.mix.values())
        known = [(e, share) for e, share in w.mix.items()
                 if self.check_ref(e, (*path, "mix", e))]
        rate, profile = self.profile(w.rate, (*path, "rate"))
        for entry, weight in known:
            service, _, endpoint = entry.partition(".")
            share = weight / total
            items.append(Workload(
                service, endpoint, rate * share, w.arrivals, w.timeout, w.source,
                tuple(RatePoint(p.at, p.rate * share, p.ramp) for p in profile)))
        return items

    def sessions(self) -> tuple[Sessions, ...]:
        out = []
        for i, w in enumerate(self.spec.workload):
            if w.sessions is None:
                continue
            path: Path = ("workload", i, "sessions", "steps")
            spec = w.sessions
            if spec.think.mean <= 0:
                # Each user would send its next request at the same instant its last one
                # ended: with an entry down, time would never advance.
                self.fail(("workload", i, "sessions", "think"), "sessions need a think time "
                          "above 0 (each user waits it before every request)")
                continue
            if all([self.check_ref(step, (*path, j)) for j, step in enumerate(spec.steps)]):
                out.append(Sessions(spec.users, spec.think, tuple(spec.steps),
                                    w.source if "source" in w.model_fields_set else "sessions",
                                    w.timeout))
        return tuple(out)
