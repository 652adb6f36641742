"""Which services receive bursts: services one request can have two calls in flight to at
once (parallel members, an asynchronous call beside what follows it, hedges, a retry beside
its timed-out attempt). Their arrivals are burstier than Poisson, so ``pressure`` bounds their
losses by nothing better than the capacity floor.
"""

from __future__ import annotations

from faultmesh.model.graph import strongly_connected
from faultmesh.model.system import Call, Group, ParallelCalls, Service, Step, System, step_calls
from faultmesh.model.verify.thinning import Failing
from faultmesh.model.verify.timeouts import decimal, round_trip


def _parallel(step: Step) -> bool:
    return isinstance(step, ParallelCalls) or (isinstance(step, Group) and step.parallel)


def simultaneous(system: System) -> frozenset[str]:
    """Services one request can have two calls in flight to at once, so that their arrivals
    come in bursts (burstier than Poisson, whose loss figure is then no upper bound): members
    of a parallel step reaching the same service, an asynchronous call's subtree meeting
    anything the endpoint does after it, hedged attempts, and a retry sent while the
    timed-out attempt it replaces still occupies the callee (a timeout within the callee's
    healthy worst case).

    What a call's subtree reaches (its cone) is needed only for the calls of endpoints with a
    parallel step or an asynchronous call; it is found for those alone, once per strongly
    connected component of the calls below them (every member of a call cycle reaches what
    the others do), as bit sets over the services: linear in the calls walked, one bit set
    per component."""
    failing = Failing(system)
    order = {name: i for i, name in enumerate(system.services)}
    out: set[str] = set()
    fanning: list[tuple[str, Service, list[list[Call]]]] = []
    for service in system.services.values():
        for ep_name, endpoint in service.endpoints.items():
            steps = [[c for c in step_calls(step) if c.probability > 0]
                     for step in endpoint.steps]
            for members in steps:
                for c in members:
                    if c.hedge is not None:
                        out.add(c.service)
                    trip = round_trip(system, service.name, c.service)
                    if c.retries > 0 and not c.asynchronous and decimal(
                            c.timeout) <= failing.healthy_worst(c.target) + trip:
                        out.add(c.service)
            if any(_parallel(step) for step in endpoint.steps) or any(
                    c.asynchronous for members in steps for c in members):
                fanning.append((ep_name, service, steps))
    if not fanning:
        return frozenset(out)
    reach = _reach_bits(system, [c.target for _, _, steps in fanning
                                 for members in steps for c in members], order)
    names = list(system.services)
    found = 0
    for ep_name, service, steps in fanning:
        endpoint = service.endpoints[ep_name]
        cones = [[(1 << order[c.service]) | reach[c.target] for c in members]
                 for members in steps]
        later = 0  # what the steps after step i reach, built from the last step back
        after: list[int] = [0] * len(steps)
        for i in range(len(steps) - 1, -1, -1):
            after[i] = later
            for cone in cones[i]:
                later |= cone
        for i, (step, members) in enumerate(zip(endpoint.steps, steps, strict=True)):
            if _parallel(step):
                seen = 0
                for cone in cones[i]:
                    found |= seen & cone
                    seen |= cone
            for k, c in enumerate(members):
                if c.asynchronous:
                    others = 0
                    for j, cone in enumerate(cones[i]):
                        if j != k:
                            others |= cone
                    found |= cones[i][k] & (after[i] | others)
    out.update(names[i] for i in range(found.bit_length()) if found >> i & 1)
    return frozenset(out)


def _reach_bits(system: System, starts: list[str], order: dict[str, int]) -> dict[str, int]:
    """For each endpoint reachable from ``starts`` (themselves included), the services its
    calls of positive probability reach, as a bit set (bit ``order[service]``)."""
    index: dict[str, int] = {}
    nodes: list[str] = []
    for start in starts:
        if start not in index:
            index[start] = len(nodes)
            nodes.append(start)
    succ: list[list[int]] = []
    edges: list[list[Call]] = []
    k = 0
    while k < len(nodes):  # breadth first: every endpoint below the starts, once
        calls = [c for c in system.endpoint(nodes[k]).calls() if c.probability > 0]
        for c in calls:
            if c.target not in index:
                index[c.target] = len(nodes)
                nodes.append(c.target)
        succ.append([index[c.target] for c in calls])
        edges.append(calls)
        k += 1
    bits = [0] * len(nodes)
    for component in strongly_connected(succ):  # callees' components first
        inside = set(component)
        total = 0
        for v in component:
            for w, c in zip(succ[v], edges[v], strict=True):
                total |= 1 << order[c.service]
                if w not in inside:
                    total |= bits[w]
        for v in component:
            bits[v] = total
    return {name: bits[i] for i, name in enumerate(nodes)}


__all__ = ["simultaneous"]
