"""The endpoint graph of required calls: its strongly connected components, cones and chains,
and the share of requests each endpoint serves while some services are down.

A call is *required* when its failure, once it is made, fails the caller (``Call.required``:
synchronous, not optional, made with probability > 0; members of a parallel group included),
and *certain* when it is also made on every request (``Call.certain``: probability 1). Nodes
are endpoints (``cart.GetCart``), so a service-level cycle that is not an endpoint cycle stays
acyclic here.

Why cones decide `survives`: an endpoint is *down* (serves no request) iff the greatest fixpoint
of "my service is up and every certain callee is available" leaves it out. Its complement is the
least fixpoint of "my service is down or a certain callee is down", i.e. exactly the endpoints
from which some endpoint of a down service is reachable over certain calls. So an entry is up
iff every service in its certain *cone* is up. A call made with probability p < 1 into a down
callee fails only the requests that make it: the caller is *degraded*, not down
(``availability`` gives the share exactly).

All walks here are iterative (no recursion), so a 10,000-deep call chain is fine. Each walk
takes an optional ``Deadline`` and checks it once per node (``OutOfTime`` when it is spent), so
a checker's budget bounds them too.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from faultmesh.model.graph import strongly_connected
from faultmesh.model.system import Call, Fallback, Group, OneOf, Step, System, step_calls
from faultmesh.model.verify.deadline import Deadline


def _tick(deadline: Deadline | None) -> Callable[[], None]:
    """The per-step deadline check of a walk (nothing without a deadline)."""
    return deadline.check if deadline is not None else _no_check


def _no_check() -> None:
    return None


class RequiredGraph:
    """Endpoints as integer nodes, with their required callees as successor lists.

    ``certain=True`` keeps only the calls made on every request (the ones that take a caller
    down); the default keeps every required call (the ones that can fail some of its requests).
    """

    def __init__(self, system: System, *, certain: bool = False) -> None:
        self.names: list[str] = []
        self.service: list[str] = []
        self.index: dict[str, int] = {}
        for name, service in system.services.items():
            for endpoint in service.endpoints:
                self.index[f"{name}.{endpoint}"] = len(self.names)
                self.names.append(f"{name}.{endpoint}")
                self.service.append(name)
        self.succ: list[list[int]] = []
        # Down only together: a fallback pair, or every branch of a one_of (``clauses``); with
        # ``alt`` the members of such clauses, for walks that follow every dependency.
        self.clauses: list[list[tuple[int, ...]]] = []
        self.alt: list[list[int]] = []
        for service in system.services.values():
            for endpoint in service.endpoints.values():
                singles, clauses = self._edges(endpoint.steps, certain)
                self.succ.append(list(dict.fromkeys(singles)))
                self.clauses.append(clauses)
                self.alt.append(list(dict.fromkeys(v for c in clauses for v in c)))

    def _edges(self, steps: Iterable[Step], certain: bool
               ) -> tuple[list[int], list[tuple[int, ...]]]:
        """(callees that alone take the caller down -- or fail some of its requests when not
        ``certain`` --, sets of callees that do so only all together)."""
        singles: list[int] = []
        clauses: list[tuple[int, ...]] = []
        for step in steps:
            if isinstance(step, Fallback):
                primary, fallback = step.primary, step.fallback
                if certain:
                    # The step fails when the fallback fails after the primary did.
                    if fallback.certain and primary.probability >= 1 and not primary.asynchronous:
                        clauses.append((self.index[primary.target], self.index[fallback.target]))
                    elif fallback.certain:
                        singles.append(self.index[fallback.target])
                else:
                    singles.extend(self.index[c.target] for c in step.calls if c.required)
            elif isinstance(step, OneOf) and certain and len(step.calls) > 1:
                # One branch per request: every branch down takes the caller down.
                if all(c.certain for c in step.calls):
                    clauses.append(tuple(dict.fromkeys(self.index[c.target] for c in step.calls)))
            elif isinstance(step, Group) and certain and step.probability < 1:
                continue  # made on some requests only: degraded, never down
            else:
                singles.extend(self.index[c.target] for c in step_calls(step)
                               if (c.certain if certain else c.required))
        singles.extend(c[0] for c in clauses if len(c) == 1)
        return singles, [c for c in clauses if len(c) > 1]

    def depends(self, v: int) -> list[int]:
        """Every callee of ``v`` that can matter to it (single and clause members)."""
        return self.succ[v] + self.alt[v] if self.alt[v] else self.succ[v]

    def __len__(self) -> int:
        return len(self.names)

    def min_cone_cost(self, cost: Mapping[str, int | None],
                      deadline: Deadline | None = None) -> list[float]:
        """For each endpoint, the smallest ``cost`` of a service in its cone (inf: none).

        One pass over the components in reverse topological order: a component's value is the
        minimum over its own services and its successors' (already final) values; every node of
        a cycle shares its cone, hence its value.
        """
        inf = float("inf")
        tick = _tick(deadline)
        best = [inf] * len(self.names)
        for component in strongly_connected([self.depends(v) for v in range(len(self))]):
            members = set(component)
            value = inf
            for v in component:
                tick()
                own = cost.get(self.service[v])
                if own is not None and own < value:
                    value = own
                for w in self.succ[v]:
                    if w not in members and best[w] < value:
                        value = best[w]
                for clause in self.clauses[v]:
                    # Every member must go down: at least the dearest of them (a lower bound;
                    # one zone may take several down, so the sum is not one). A member inside
                    # this cycle counts its own service only.
                    bound = max(best[w] if w not in members else _own(cost, self.service[w])
                                for w in clause)
                    if bound < value:
                        value = bound
            for v in component:
                best[v] = value
        return best

    def witness(self, start: int, cost: Mapping[str, int | None], best: list[float],
                deadline: Deadline | None = None) -> set[str] | None:
        """Services whose failure takes ``start`` down, following the cheapest option of each
        endpoint by ``best`` (``min_cone_cost``'s values): exact without clauses; with them, a
        failure set to try (its cost may exceed the lower bound). None: nothing takes it down.
        """
        tick = _tick(deadline)
        if math.isinf(best[start]):
            return None
        services: set[str] = set()
        stack, seen = [start], {start}
        while stack:
            tick()
            v = stack.pop()
            target = best[v]
            own = cost.get(self.service[v])
            if own is not None and own == target:
                services.add(self.service[v])
                continue
            nxt = next(([w] for w in self.succ[v] if best[w] == target), None)
            if nxt is None:
                nxt = next((list(c) for c in self.clauses[v]
                            if max(best[w] for w in c) == target), None)
            if nxt is None:  # a value shared round a cycle: take the cheapest own service
                services.add(self.service[v])
                continue
            for w in nxt:
                if w not in seen:
                    seen.add(w)
                    stack.append(w)
        return services

    def unavailable(self, services_down: Iterable[str],
                    deadline: Deadline | None = None) -> set[int]:
        """Endpoints that are unavailable when these services are down (reverse reachability)."""
        tick = _tick(deadline)
        down = set(services_down)
        pred: list[list[int]] = [[] for _ in self.names]
        for v, targets in enumerate(self.succ):
            for w in targets:
                pred[w].append(v)
        # A clause takes its endpoint down when its last member goes down: count them down.
        left: list[int] = []
        owner: list[int] = []
        members_of: list[list[int]] = [[] for _ in self.names]
        for v, clauses in enumerate(self.clauses):
            for clause in clauses:
                for w in set(clause):
                    members_of[w].append(len(left))
                left.append(len(set(clause)))
                owner.append(v)
        seen = {v for v, service in enumerate(self.service) if service in down}
        queue = deque(seen)
        while queue:
            tick()
            w = queue.popleft()
            for v in pred[w]:
                if v not in seen:
                    seen.add(v)
                    queue.append(v)
            for c in members_of[w]:
                left[c] -= 1
                if left[c] == 0 and owner[c] not in seen:
                    seen.add(owner[c])
                    queue.append(owner[c])
        return seen

    def chain(self, start: int, goal: Callable[[int], bool],
              deadline: Deadline | None = None) -> list[int] | None:
        """A shortest path of required calls from ``start`` to a node satisfying ``goal``."""
        tick = _tick(deadline)
        parent: dict[int, int] = {start: start}
        queue = deque([start])
        while queue:
            tick()
            v = queue.popleft()
            if goal(v):
                path = [v]
                while parent[path[-1]] != path[-1]:
                    path.append(parent[path[-1]])
                return path[::-1]
            for w in self.depends(v):
                if w not in parent:
                    parent[w] = v
                    queue.append(w)
        return None

    def cone(self, starts: Iterable[int], deadline: Deadline | None = None) -> set[int]:
        """Endpoints reachable from ``starts`` over required calls (starts included)."""
        tick = _tick(deadline)
        seen = set(starts)
        queue = deque(seen)
        while queue:
            tick()
            v = queue.popleft()
            for w in self.depends(v):
                if w not in seen:
                    seen.add(w)
                    queue.append(w)
        return seen


def _own(cost: Mapping[str, int | None], service: str) -> float:
    """A service's own cost to kill (inf: it cannot be killed)."""
    own = cost.get(service)
    return float("inf") if own is None else own


def call_success(call: Call, callee: float) -> float:
    """Share of the caller's requests that get past ``call`` when each request to its callee
    succeeds with probability ``callee`` (independently: every attempt draws its own calls).

    As the engine makes it: the call happens with probability p (drawn once per step); then
    ``repeat`` repetitions in a row, each succeeding unless all of its ``retries + 1`` attempts
    fail: ``1 - p + p * (1 - (1 - callee) ** attempts) ** repeat``.
    """
    if not call.required or callee >= 1.0:
        return 1.0  # exactly: 1 - p + p need not round to 1
    per_repetition = 1.0 - (1.0 - callee) ** call.attempts
    return 1.0 - call.probability + call.probability * per_repetition ** call.repeat


def step_success(step: Step, success: Callable[[Call], float]) -> float:
    """Share of requests that get past one step, from each call's ``call_success``.

    A one_of makes branch i on a weight share s_i of the requests: sum of s_i * success_i; a
    group is made with probability p: 1 - p + p * (product of its calls'); a fallback fails
    only when the fallback fails after the primary did: 1 - (1 - primary) * (1 - fallback).
    """
    if isinstance(step, Call):
        return success(step)
    if isinstance(step, OneOf):
        return sum(s * success(c) for s, c in zip(step.shares(), step.calls, strict=True))
    if isinstance(step, Fallback):
        primary = success(step.primary)
        return 1.0 if primary >= 1.0 else 1.0 - (1.0 - primary) * (1.0 - success(step.fallback))
    value = 1.0
    for call in step.calls:
        value *= success(call)
    if isinstance(step, Group):
        return 1.0 if value >= 1.0 else 1.0 - step.probability + step.probability * value
    return value


# Inside a call cycle the shares are the greatest fixpoint, reached from above by iteration;
# every iterate is an upper bound, and the iteration stops when it moves less than this.
FIXPOINT_TOLERANCE = 1e-12
FIXPOINT_ROUNDS = 10_000


def availability(system: System, services_down: Iterable[str],
                 deadline: Deadline | None = None) -> dict[str, float]:
    """Share of each endpoint's requests that succeed while ``services_down`` are down.

    An endpoint of a down service serves nothing; otherwise every required call must get
    through (``call_success``), independently, so the shares multiply. Exact for the engine's
    draws (probability, repeat, retries) when nothing else fails a request: no circuit breaker
    opened by these failures (an open one refuses even calls that would succeed, so the share
    is then at most this), no retry refused by a callee's ``max_retries`` (likewise at most
    this), no timeout, no network loss. 0 exactly iff the endpoint is down
    (a certain call into a down callee), the cone rule of this module.
    """
    down = set(services_down)
    tick = _tick(deadline)
    graph = RequiredGraph(system)
    steps: list[tuple[Step, ...]] = [endpoint.steps for service in system.services.values()
                                     for endpoint in service.endpoints.values()]
    share = [0.0 if graph.service[v] in down else 1.0 for v in range(len(graph))]
    index = graph.index

    def success(call: Call) -> float:
        return call_success(call, share[index[call.target]])

    def evaluate(v: int) -> float:
        tick()
        if graph.service[v] in down:
            return 0.0
        value = 1.0
        for step in steps[v]:
            value *= step_success(step, success)
        return value

    for component in strongly_connected([graph.depends(v) for v in range(len(graph))]):
        if len(component) == 1 and component[0] not in graph.succ[component[0]]:
            share[component[0]] = evaluate(component[0])
            continue
        for _ in range(FIXPOINT_ROUNDS):
            moved = 0.0
            for v in component:
                new = evaluate(v)
                moved = max(moved, share[v] - new)
                share[v] = new
            if moved <= FIXPOINT_TOLERANCE:
                break
    return {graph.names[v]: share[v] for v in range(len(graph))}


__all__ = ["FIXPOINT_TOLERANCE", "RequiredGraph", "availability", "call_success",
           "step_success"]
