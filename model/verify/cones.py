"""The endpoint graph of required calls: its strongly connected components, cones and chains.

A call is *required* when its failure fails the caller: synchronous, not optional, and made with
probability > 0 (members of a parallel group included). Nodes are endpoints (``cart.GetCart``),
so a service-level cycle that is not an endpoint cycle stays acyclic here.

Why cones decide `survives`: availability is the greatest fixpoint of "my service is up and every
required callee is available". Its complement is the least fixpoint of "my service is down or a
required callee is unavailable", i.e. exactly the endpoints from which some endpoint of a down
service is reachable over required calls. So an entry is available iff every service in its
*cone* (the services of the endpoints it reaches over required calls, itself included) is up.

All walks here are iterative (no recursion), so a 10,000-deep call chain is fine.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping

from faultmesh.model.system import Call, System


def is_required(call: Call) -> bool:
    """Does the caller fail when this call's target is unavailable?"""
    return not call.asynchronous and not call.optional and call.probability > 0


class RequiredGraph:
    """Endpoints as integer nodes, with their required callees as successor lists."""

    def __init__(self, system: System) -> None:
        self.names: list[str] = []
        self.service: list[str] = []
        self.index: dict[str, int] = {}
        for name, service in system.services.items():
            for endpoint in service.endpoints:
                self.index[f"{name}.{endpoint}"] = len(self.names)
                self.names.append(f"{name}.{endpoint}")
                self.service.append(name)
        self.succ: list[list[int]] = []
        for service in system.services.values():
            for endpoint in service.endpoints.values():
                targets = dict.fromkeys(self.index[c.target] for c in endpoint.calls()
                                        if is_required(c))
                self.succ.append(list(targets))

    def __len__(self) -> int:
        return len(self.names)

    def min_cone_cost(self, cost: Mapping[str, int | None]) -> list[float]:
        """For each endpoint, the smallest ``cost`` of a service in its cone (inf: none).

        One pass over the components in reverse topological order: a component's value is the
        minimum over its own services and its successors' (already final) values; every node of
        a cycle shares its cone, hence its value.
        """
        inf = float("inf")
        best = [inf] * len(self.names)
        for component in strongly_connected(self.succ):
            members = set(component)
            value = inf
            for v in component:
                own = cost.get(self.service[v])
                if own is not None and own < value:
                    value = own
                for w in self.succ[v]:
                    if w not in members and best[w] < value:
                        value = best[w]
            for v in component:
                best[v] = value
        return best

    def unavailable(self, services_down: Iterable[str]) -> set[int]:
        """Endpoints that are unavailable when these services are down (reverse reachability)."""
        down = set(services_down)
        pred: list[list[int]] = [[] for _ in self.names]
        for v, targets in enumerate(self.succ):
            for w in targets:
                pred[w].append(v)
        seen = {v for v, service in enumerate(self.service) if service in down}
        queue = deque(seen)
        while queue:
            w = queue.popleft()
            for v in pred[w]:
                if v not in seen:
                    seen.add(v)
                    queue.append(v)
        return seen

    def chain(self, start: int, goal: Callable[[int], bool]) -> list[int] | None:
        """A shortest path of required calls from ``start`` to a node satisfying ``goal``."""
        parent: dict[int, int] = {start: start}
        queue = deque([start])
        while queue:
            v = queue.popleft()
            if goal(v):
                path = [v]
                while parent[path[-1]] != path[-1]:
                    path.append(parent[path[-1]])
                return path[::-1]
            for w in self.succ[v]:
                if w not in parent:
                    parent[w] = v
                    queue.append(w)
        return None

    def cone(self, starts: Iterable[int]) -> set[int]:
        """Endpoints reachable from ``starts`` over required calls (starts included)."""
        seen = set(starts)
        queue = deque(seen)
        while queue:
            v = queue.popleft()
            for w in self.succ[v]:
                if w not in seen:
                    seen.add(w)
                    queue.append(w)
        return seen


def strongly_connected(succ: list[list[int]]) -> list[list[int]]:
    """Tarjan's SCCs, iteratively; each component comes after every component it reaches."""
    n = len(succ)
    index = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] != -1:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        work = [(root, 0)]
        while work:
            v, i = work[-1]
            if i < len(succ[v]):
                work[-1] = (v, i + 1)
                w = succ[v][i]
                if index[w] == -1:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = True
                    work.append((w, 0))
                elif on_stack[w] and index[w] < low[v]:
                    low[v] = index[w]
                continue
            work.pop()
            if work:
                u = work[-1][0]
                if low[v] < low[u]:
                    low[u] = low[v]
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    component.append(w)
                    if w == v:
                        break
                components.append(component)
    return components


__all__ = ["RequiredGraph", "is_required", "strongly_connected"]
