"""The circuit breakers of the run's edges, grouped by policy, and their summary.

Breakers live in the caller's instance, as in the client processes the engine models (a
Resilience4j breaker in each client): ``BreakerGroup`` holds the breakers of one policy on one
(caller service, callee service) edge, one per caller instance, shared by the call sites of
that edge with an equal policy; a site picks its caller instance's breaker by the instance's
index. ``breakers_summary`` gives an edge's entry in the run's summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faultmesh.model.system import BreakerPolicy, RateBreakerPolicy

if TYPE_CHECKING:
    from faultmesh.simulations.observation.summary import BreakerInstance, BreakerSummary


class BreakerGroup:
    """The circuit breakers of one policy on one edge: one per caller instance.

    ``breakers[i]`` is caller instance ``i``'s breaker; ``sites`` names the call sites
    (``service.endpoint/step``) that share it. ``label(i)`` tags that breaker in the summary:
    the caller instance's name, with ``/k`` appended when the edge has ``k`` > 1 policies.
    """

    __slots__ = ("breakers", "callers", "number", "policy", "sites")

    def __init__(self, policy: BreakerPolicy, callers: list[str], number: int) -> None:
        from faultmesh.simulations.breakers import CircuitBreaker

        self.policy = policy
        self.callers = callers  # the caller instances' names, by index
        self.number = number  # 1-based, in the order the edge's policies first appear
        self.breakers = tuple(CircuitBreaker(policy) for _ in callers)
        self.sites: list[str] = []

    def label(self, index: int, policies: int) -> str:
        name = self.callers[index]
        return name if policies == 1 else f"{name}/{self.number}"


_SEVERITY = {"closed": 0, "half_open": 1, "open": 2}


def breakers_summary(groups: list[BreakerGroup]) -> BreakerSummary:
    """The ``breakers`` entry of one edge in the run's summary.

    ``transitions`` merges every breaker's moves in time order as ``[t, state, label]``;
    ``state`` is the worst final state (open, then half-open, then closed); ``instances``
    gives each breaker's caller instance, kind, final state and the call sites sharing it.
    """
    count = len(groups)
    moves: list[list[Any]] = []
    instances: dict[str, BreakerInstance] = {}
    kinds: list[str] = []
    for group in groups:
        kind = "rate" if isinstance(group.policy, RateBreakerPolicy) else "consecutive"
        if kind not in kinds:
            kinds.append(kind)
        for index, breaker in enumerate(group.breakers):
            label = group.label(index, count)
            moves.extend([t, state, label] for t, state in breaker.transitions)
            instances[label] = {"instance": group.callers[index], "kind": kind,
                                "state": breaker.state, "sites": list(group.sites)}
    moves.sort(key=lambda move: move[0])  # stable: simultaneous moves keep their order
    state = max((b["state"] for b in instances.values()), key=_SEVERITY.__getitem__,
                default="closed")
    return {"kind": "+".join(kinds), "state": state, "transitions": moves,
            "instances": instances}
