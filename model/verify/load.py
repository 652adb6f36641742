"""Offered load: the requests per second that reach each endpoint, from the workload.

Every call counts (synchronous or asynchronous, optional or not, in a parallel group or not),
weighted by ``probability x repeat``, and the weights multiply along a chain. So the load of
endpoint e is

    load(e) = entry rate at e + sum over calls c into e of load(caller) x weight(c).

Retries are not counted here: this is the load of the system as it runs, each call made once.
A retry fires only for a failed attempt; which attempts fail depends on the failure scenario,
and ``capacity`` adds the retries its scenario causes (attempts its limits reject). The case
in which every attempt fails and every retry fires is a question of metastability, not of
capacity. (In a scenario that only removes instances, calls are never more than nominal: an
attempt routed to a crashed instance is refused at once, costs the survivors nothing and is
retried once on another; a request whose call fails makes no later calls.)

Arithmetic is exact (``Fraction``): capacity compares ``demand`` with ``utilization x
capacity`` and a tie decided by float rounding would not be a proof. Spec numbers are read as
the decimals the user wrote (``exact``: 0.8 is 4/5, not the binary float nearest to it).
Components of the call graph are solved callers-first; a call cycle is the linear system
``x = b + M x`` of its component, solved exactly. Its expected load is finite iff the spectral
radius of M is below 1, which for the Z-matrix ``I - M`` holds iff ``I - M`` is invertible
with a non-negative inverse (M-matrix theory); otherwise the endpoints of that cycle, and
everything they call, receive an unbounded load.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

from faultmesh.model.graph import strongly_connected
from faultmesh.model.system import Call, Endpoint, OneOf, System, step_calls, step_shares


def exact(x: float) -> Fraction:
    """The decimal a float prints as, exactly (``10ms`` -> 1/100, ``80%`` -> 4/5)."""
    return _exact(float(x))


# A spec has few distinct numbers (rates, probabilities, service times) and a 100,000-service
# check reads them hundreds of thousands of times; parsing the decimal is the costly part.
@lru_cache(maxsize=4096)
def _exact(x: float) -> Fraction:
    return Fraction(repr(x))


@dataclass(frozen=True)
class OfferedLoad:
    """Requests per second reaching each endpoint (``service.endpoint``)."""

    endpoints: dict[str, Fraction]
    unbounded: frozenset[str]  # endpoints whose expected load is infinite (call cycles)
    # The most attempts (1 + retries) of any call with a chance of firing into each service
    # (absent: 1), gathered in the same pass over the calls: looking it up per service would
    # walk every call once per service.
    attempts: dict[str, int] = field(default_factory=dict)
    called: frozenset[str] = frozenset()  # services some call reaches with a chance of firing

    def service(self, system: System, name: str) -> tuple[Fraction, Fraction, bool]:
        """(requests/s, demand in busy workers, unbounded?) of one service.

        Demand is the sum over its endpoints of load x mean service time.
        """
        load = Fraction(0)
        demand = Fraction(0)
        unbounded = False
        for ep_name, endpoint in system.services[name].endpoints.items():
            target = f"{name}.{ep_name}"
            rate = self.endpoints.get(target, Fraction(0))
            load += rate
            demand += rate * exact(endpoint.service_time.mean)
            unbounded |= target in self.unbounded
        return load, demand, unbounded


def endpoint_shares(endpoint: Endpoint) -> Iterator[tuple[Call, Fraction]]:
    """Every call of an endpoint with the share of its requests the call's step sends it:
    a ``one_of`` branch weight / total, a group's calls the group's probability, a fallback's
    callee all of them (it takes the primary's failures, which can be every request)."""
    for step in endpoint.steps:
        if isinstance(step, OneOf):  # exactly, so the branches' shares add up to 1
            weights = [exact(w) for w in step.weights]
            total = sum(weights, Fraction(0))
            shares = [w / total for w in weights]
        else:
            shares = [exact(share) for share in step_shares(step)]
        yield from zip(step_calls(step), shares, strict=True)


def offered_load(system: System) -> OfferedLoad:
    names: list[str] = []
    index: dict[str, int] = {}
    for name, service in system.services.items():
        for ep_name in service.endpoints:
            index[f"{name}.{ep_name}"] = len(names)
            names.append(f"{name}.{ep_name}")
    weights: list[dict[int, Fraction | int]] = []
    attempts: dict[str, int] = {}
    called: set[str] = set()
    unbounded_entries: set[int] = set()  # session steps with no think time
    for service in system.services.values():
        for endpoint in service.endpoints.values():
            out: dict[int, Fraction] = {}
            for call, share in endpoint_shares(endpoint):
                if call.probability > 0:
                    called.add(call.service)
                    if call.attempts > attempts.get(call.service, 1):
                        attempts[call.service] = call.attempts
                weight = exact(call.probability) * call.repeat * share
                if weight > 0:
                    target = index[call.target]
                    out[target] = out.get(target, Fraction(0)) + weight
            # Whole weights (probability 1, a repeat count) as ints: a fan-out compounds
            # loads to hundreds of digits, and int arithmetic on them is many times cheaper
            # than Fraction's (mixed with Fractions it stays exact).
            weights.append({t: int(w) if w.denominator == 1 else w for t, w in out.items()})

    inflow: list[Fraction | int] = [Fraction(0)] * len(names)
    for w in system.workload:
        inflow[index[w.entry]] += exact(w.rate)
    for sessions in system.sessions:
        # Closed: at most users / think requests per second in all (see ``Sessions``).
        for entry, rate in sessions.step_rates().items():
            if math.isinf(rate):
                unbounded_entries.add(index[entry])
            else:
                inflow[index[entry]] += exact(rate)
    unbounded_in = [v in unbounded_entries for v in range(len(names))]
    inflow = [int(x) if x.denominator == 1 else x for x in inflow]  # as the weights
    load: list[Fraction | int] = [0] * len(names)
    unbounded = [False] * len(names)
    succ = [list(out) for out in weights]
    # Tarjan lists callees first; walk callers first so each inflow is final when used.
    for component in reversed(strongly_connected(succ)):
        members = set(component)
        cyclic = len(component) > 1 or component[0] in weights[component[0]]
        if not cyclic:
            v = component[0]
            load[v], unbounded[v] = inflow[v], unbounded_in[v]
        elif any(unbounded_in[v] for v in component):
            for v in component:
                unbounded[v] = True
        elif any(inflow[v] for v in component):
            solved = _solve_cycle(component, weights, inflow)
            for v in component:
                if solved is None:
                    unbounded[v] = True
                else:
                    load[v] = solved[v]
        for v in component:
            for callee, factor in weights[v].items():
                if callee not in members:
                    inflow[callee] += load[v] * factor
                    unbounded_in[callee] |= unbounded[v]
    return OfferedLoad(
        endpoints={names[v]: Fraction(load[v]) for v in range(len(names))
                   if load[v] or unbounded[v]},
        unbounded=frozenset(names[v] for v in range(len(names)) if unbounded[v]),
        attempts=attempts,
        called=frozenset(called),
    )


def _solve_cycle(component: list[int], weights: list[dict[int, Fraction | int]],
                 inflow: list[Fraction | int]) -> dict[int, Fraction] | None:
    """Exact solution of ``x = b + M x`` on one component, or None if it diverges."""
    n = len(component)
    position = {v: i for i, v in enumerate(component)}
    # A = I - M, with M[i][j] the weight of the call from component[j] into component[i].
    a = [[Fraction(int(i == j)) for j in range(n)] for i in range(n)]
    for j, v in enumerate(component):
        for w, weight in weights[v].items():
            if w in position:
                a[position[w]][j] -= weight
    inverse = _invert(a)
    if inverse is None or any(x < 0 for row in inverse for x in row):
        return None  # spectral radius >= 1: each request spawns at least one more, forever
    b = [inflow[v] for v in component]
    return {v: sum((inverse[i][k] * b[k] for k in range(n)), Fraction(0))
            for i, v in enumerate(component)}


def _invert(a: list[list[Fraction]]) -> list[list[Fraction]] | None:
    """Gauss-Jordan inverse over the rationals; None if singular."""
    n = len(a)
    m = [row[:] + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(a)]
    for col in range(n):
        pivot = next((r for r in range(col, n) if m[r][col] != 0), None)
        if pivot is None:
            return None
        m[col], m[pivot] = m[pivot], m[col]
        p = m[col][col]
        m[col] = [x / p for x in m[col]]
        for r in range(n):
            if r != col and m[r][col] != 0:
                f = m[r][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col], strict=True)]
    return [row[n:] for row in m]


__all__ = ["OfferedLoad", "exact", "offered_load"]
