"""Smallest repairs for ``overload_recovery``, chosen with z3 Optimize.

For each service whose overload sustains itself, candidate changes are built and each is
checked alone by re-running the fluid analysis on the changed system: a retry budget (Envoy's
defaults: 20 %, 3) on a service the loop retries into, fewer retries on a retrying call of the
loop (the most retries that still fix it), a queue timeout on the saturated service (deadline
propagation alone is not credited by the proof, so it is not offered), or the fewest replicas
that carry its storm. Which candidates to take is a set cover: every failing service covered
by one candidate that fixes it; z3 Optimize minimises the number of changed keys, then the
size of the change (retries removed, replicas added), then prefers the candidates in the order
above. The chosen set is applied together and re-verified; services still failing (a change
upstream can move the storm downstream) get a further round, up to ``ROUNDS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import z3

from faultmesh.model.policies import RetryBudget
from faultmesh.model.system import FrozenMap, System
from faultmesh.model.units import spec_duration
from faultmesh.model.verify.deadline import REPAIR_OUT_OF_TIME, Deadline, OutOfTime
from faultmesh.model.verify.overload import Analysis, analyse, loop, nice_up
from faultmesh.model.verify.overload_queue import network_round_trip
from faultmesh.model.verify.sites import CallSite, with_call_fields
from faultmesh.model.verify.verdict import Repair

ROUNDS = 3
MAX_REPLICAS = 1000


def with_service(system: System, name: str, **changes: object) -> System:
    """The system with one service's fields replaced (a repair candidate, in the model)."""
    services = dict(system.services)
    services[name] = replace(services[name], **changes)
    return replace(system, services=FrozenMap(services))


@dataclass(frozen=True)
class Candidate:
    """One change: its spec key paths and values, the model edit, its size and wording."""

    changes: dict[str, object]
    edit: Callable[[System], System]
    size: int
    preference: int
    words: str


def _edit_service(name: str, **changes: object) -> Callable[[System], System]:
    def edit(system: System) -> System:
        return with_service(system, name, **changes)

    return edit


def _edit_call(site: CallSite, **changes: object) -> Callable[[System], System]:
    def edit(system: System) -> System:
        return with_call_fields(system, [(site, changes)])

    return edit


def _fixes(system: System, candidate: Candidate, service: str) -> bool:
    after = analyse(candidate.edit(system)).services.get(service)
    return after is None or after.sustains is None


def candidates(system: System, analysis: Analysis, service: str,
               deadline: Deadline) -> list[Candidate]:
    """Every single change that makes ``service`` pass, checked one by one."""
    found: list[Candidate] = []
    s = analysis.services[service]
    path = loop(analysis, service)
    retried = [f for f in path if f.site.call.retries > 0 and f.site.call.hedge is None]
    tried: set[str] = set()
    for f in retried:
        callee = f.site.call.service
        if callee in tried or system.services[callee].retry_budget is not None:
            continue
        tried.add(callee)
        c = Candidate({f"services.{callee}.retry_budget": {"percent": "20%",
                                                          "min_concurrency": 3}},
                      _edit_service(callee, retry_budget=RetryBudget()),
                      1, 0, f"add a retry budget (20%, min 3) to calls into {callee}")
        if _fixes(system, c, service):
            found.append(c)
    for f in retried:
        deadline.check()
        for r in range(f.site.call.retries - 1, -1, -1):
            c = Candidate({f.site.key("retries"): r},
                          _edit_call(f.site, retries=r),
                          f.site.call.retries - r, 1,
                          f"reduce retries on {f.site.describe()} from "
                          f"{f.site.call.retries} to {r}")
            if _fixes(system, c, service):
                found.append(c)
                break
    target = system.services[service]
    if s.sustains != "nominal" and s.timeout is not None:
        room = s.timeout - s.mean - network_round_trip(system)
        if room > 0:
            # Half the room: the rest leaves the service time's tail time to finish before
            # the caller gives up (work served just under a longer queue timeout often ends
            # after the per-try timeout, orphaned all the same).
            wait = nice_up(room / 2) if nice_up(room / 2) < room else room / 2
            c = Candidate({f"services.{service}.queue_timeout": spec_duration(wait)},
                          _edit_service(service, queue_discipline=replace(
                              target.queue_discipline, timeout=wait)),
                          1, 3, f"shed work queued at {service} longer than "
                                f"{spec_duration(wait)}")
            if _fixes(system, c, service):
                found.append(c)
    needed = max(s.nominal_demand, s.storm_demand) / max(s.capacity / target.replicas, 1e-12)
    start = max(target.replicas + 1, math.floor(needed * (1 - 1e-12)) + 1)
    for n in range(start, min(start + 16, MAX_REPLICAS)):
        deadline.check()
        zones = tuple(target.zones[i % target.replicas] if i < target.replicas
                      else system.zones[i % len(system.zones)] for i in range(n))
        c = Candidate({f"services.{service}.replicas": n},
                      _edit_service(service, zones=zones),
                      n - target.replicas, 4,
                      f"raise {service}'s replicas from {target.replicas} to {n}")
        if _fixes(system, c, service):
            found.append(c)
            break
    return found


def choose(options: dict[str, list[Candidate]], deadline: Deadline) -> list[Candidate] | None:
    """The cheapest set covering every service (z3 Optimize); None if some has no option."""
    if any(not cs for cs in options.values()):
        return None
    unique: dict[str, Candidate] = {}
    for cs in options.values():
        for c in cs:
            unique.setdefault(repr(sorted(c.changes.items())), c)
    keys = list(unique)
    pick = {k: z3.Bool(f"pick[{i}]") for i, k in enumerate(keys)}
    opt = z3.Optimize()
    opt.set("timeout", deadline.z3_ms())
    for cs in options.values():
        opt.add(z3.Or([pick[repr(sorted(c.changes.items()))] for c in cs]))

    def cost(weight: Callable[[Candidate], int]) -> z3.ArithRef:
        return z3.Sum([z3.If(pick[k], weight(unique[k]), 0) for k in keys])

    opt.minimize(cost(lambda c: len(c.changes)))
    opt.minimize(cost(lambda c: c.size))
    opt.minimize(cost(lambda c: c.preference))
    if opt.check() != z3.sat:
        return None
    model = opt.model()
    return [unique[k] for k in keys if z3.is_true(model.eval(pick[k], model_completion=True))]


def repair(system: System, analysis: Analysis, deadline: Deadline) -> tuple[Repair | None, str]:
    """The smallest repair found, re-verified on the model, with a note if none is."""
    chosen: list[Candidate] = []
    current, state = system, analysis
    try:
        for _ in range(ROUNDS):
            failing = [s.name for s in state.failing]
            if not failing:
                break
            if any(state.services[n].sustains == "unbounded" for n in failing):
                return None, "no repair among budgets, retries, deadlines and replicas " \
                             "bounds a call cycle's storm"
            options = {n: candidates(current, state, n, deadline) for n in failing}
            picked = choose(options, deadline)
            if picked is None:
                return None, "no repair found among budgets, retries, deadlines, queue " \
                             "timeouts and replicas"
            for c in picked:
                current = c.edit(current)
            chosen.extend(picked)
            state = analyse(current)
        if state.failing:
            return None, "no repair found within three rounds of changes"
    except OutOfTime:  # the verdict stands without a repair
        return None, REPAIR_OUT_OF_TIME
    changes: dict[str, object] = {}
    for c in chosen:
        changes.update(c.changes)
    return Repair("; ".join(c.words for c in chosen), changes), ""


__all__ = ["Candidate", "candidates", "choose", "repair", "with_service"]
