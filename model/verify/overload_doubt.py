"""When ``overload_recovery``'s fluid argument proves a storm, and when it cannot decide.

The verifier's storm load is an upper bound (``overload_fluid.storm_state``): enough for
``holds``, not for ``violated``. ``undecided`` says why a service whose upper bound sustains an
overload is still not a proven counterexample; ``certain`` finds the service on the loop that
the storm's *lower* bound (``overload_fluid.storm_floor``) certainly saturates. Mechanisms that
drop or reorder queued work (``drops``) end waits the fluid model lets grow, so the storm's
persistence then depends on the queue's fluctuations: ``unknown``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultmesh.model.system import Service, System
from faultmesh.model.verify.overload_fluid import Flow, State, made_in_storm, servers
from faultmesh.model.verify.sites import call_sites
from faultmesh.model.verify.wording import number

if TYPE_CHECKING:
    from faultmesh.model.verify.overload import ServiceOverload


def _rate(x: float) -> str:
    return f"{number(x)}/s"


# ``violated`` needs the storm's lower bound at least this far above capacity. At capacity
# the fluid backlog no longer falls, and the queue's length is a walk without drift, which
# takes unboundedly long to come back to empty: the storm does not end on its own.
FLOOR_MARGIN = 1.0


def undecided(system: System, floor: State, s: ServiceOverload,
              path: list[Flow]) -> str | None:
    """Why the fluid argument cannot show that ``s``'s overload sustains itself (None: it
    shows it), for a service whose upper bound says it may.

    ``violated`` is claimed only for a storm that certainly exists: the storm's *lower* bound
    (``storm_floor``: the fewest attempts the policies allow, callers slowed by the calls they
    wait on) keeps ``s`` above capacity, and nothing on the loop drops work the fluid model
    cannot account for: deadline propagation, a queue timeout, a bounded queue or LIFO (they
    end waits at the timeout and let part of the served work be live, so whether a storm
    survives depends on the queue's fluctuations), or a rate limit. A storm that exists only
    through queueing delay (two fixed points of the stochastic queue) is not decided either.
    An overload at the nominal load, or an unbounded call cycle, needs none of this.
    """
    if s.sustains in ("nominal", "unbounded"):
        return None
    names = [s.name, *(f.site.caller_service for f in path[1:])]
    for name in dict.fromkeys(names):
        service = system.services[name]
        mechanism = drops(service)
        if mechanism is not None:
            return (f"{name} {mechanism}, which ends waits the fluid model lets grow (part of "
                    f"its served work stays live)")
    if s.sustains == "queueing":
        return ("its load stays below capacity even in the storm; only queueing delay could "
                "keep attempts timing out, which depends on fluctuations")
    if certain(system, floor, s, path) is None:
        return (f"the storm certainly brings it {_rate(s.floor_rate)} (the fewest attempts the "
                f"retry policies allow, callers slowed by their own calls), below "
                f"{FLOOR_MARGIN:g}x its capacity {_rate(s.capacity_rate)}, and no caller on "
                f"the way is certainly saturated; what it gets between that and "
                f"{_rate(s.storm_rate)} depends on timing")
    return None


def certain(system: System, floor: State, s: ServiceOverload, path: list[Flow]) -> str | None:
    """Which service on the loop the storm certainly saturates, and why (None: none).

    A service u on the loop (below the entry) is certainly saturated once the storm's lower
    bound of its arrivals ``a_e`` (``storm_floor``) needs ``FLOOR_MARGIN`` x its workers even
    with every call it certainly makes (``made_in_storm``: one repetition, none past a failed
    required call) answered in the callee's service time (``sum a_e x (S_e + sum p x
    S_callee)``), or needs that much of one callee's workers (``sum a_e x p x S_callee``):
    that callee then runs at capacity, u's workers wait on it and u completes no more than
    the callee lets through. Either way u's queue grows, every attempt into u times out, and
    the callers' retries that keep the arrivals at ``a_e`` go on: the storm sustains itself,
    with the trigger gone.
    """
    names = [s.name, *(f.site.caller_service for f in path[1:])]
    made = made_in_storm(system)
    for name in dict.fromkeys(reversed(names)):
        service = system.services[name]
        busy = 0.0
        need: dict[str, float] = {}
        arrivals = 0.0
        for ep_name, endpoint in service.endpoints.items():
            rate = floor.arrivals.get(f"{name}.{ep_name}", 0.0)
            arrivals += rate
            hold = endpoint.service_time.mean
            for site in call_sites(system):
                call = site.call
                if site.caller != f"{name}.{ep_name}" or call.asynchronous or \
                        (site.caller, site.step, site.member) not in made:
                    continue
                # Made whether the callee answers or not; it holds u's worker at least for the
                # callee's service time, or for the timeout when that is shorter.
                callee_time = min(system.endpoint(call.target).service_time.mean, call.timeout)
                work = call.probability * callee_time
                hold += work
                need[call.service] = need.get(call.service, 0.0) + rate * work
            busy += rate * hold
        capacity = service.replicas * servers(service)
        if busy >= FLOOR_MARGIN * capacity:
            return (f"{name} certainly gets {_rate(arrivals)} in the storm, keeping "
                    f"{number(busy)} of its {capacity} workers busy")
        for callee, work in need.items():
            c = system.services[callee]
            c_capacity = c.replicas * servers(c)
            if work >= FLOOR_MARGIN * c_capacity:
                return (f"{name} certainly gets {_rate(arrivals)} in the storm, more than "
                        f"{callee} can serve for it ({number(work)} of {c_capacity} workers)")
    return None


def drops(service: Service) -> str | None:
    """A mechanism of ``service`` that drops or reorders queued work (None: plain FIFO)."""
    discipline = service.queue_discipline
    if service.propagate_deadline:
        return "drops expired work (propagate_deadline)"
    if discipline.timeout is not None:
        return f"drops work queued over {discipline.timeout:g}s (queue_timeout)"
    if discipline.kind != "fifo":
        return f"serves its queue {discipline.kind.replace('_', ' ')}"
    if service.queue is not None or (service.concurrency is not None
                                     and service.concurrency > service.workers):
        return "has a bounded queue"
    if service.rate_limit is not None or any(ep.rate_limit is not None
                                             for ep in service.endpoints.values()):
        return "is rate limited"
    return None


__all__ = ["FLOOR_MARGIN", "certain", "drops", "undecided"]
