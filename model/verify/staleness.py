"""``staleness``: with client-side discovery, callers cover the window they route to the dead.

With ``discovery.mode: client`` each caller load-balances over its own cached view of a
service's instances. When an instance dies the registry keeps it until ``ttl`` after its last
heartbeat (at most ``ttl`` after the death, the last heartbeat having come just before), and a
caller's cache can lag the registry by up to ``refresh``. So for up to

    window = ttl + refresh

callers keep sending a share of their calls to a dead instance. (With server-side discovery
the view is always fresh: the property holds trivially.)

A call *covers* the window when one failed attempt is not the end of the call: it has
``retries >= 1`` and each attempt is load-balanced anew, so a retry can land on a live replica.
Two things that look like cover but are not:

* a circuit breaker: it sits on the caller -> service edge, so one dead replica out of n only
  adds 1/n to the failure rate it sees (often under its threshold: it stays closed), and when
  it does open it fails every call, the live replicas' included;
* retries to a service balanced by ``consistent_hash``: a key keeps its replica while that
  replica is in the caller's view, so the retry goes to the same dead instance.

Checked: every call that the caller awaits and whose failure fails it (synchronous, not
optional, probability > 0) into a service with at least two replicas (with a single replica
there is nothing live to route to, which is what ``survives`` is about). Workload requests
come through the ingress, which is not a caller with its own policies, and are not checked.

Violated with the chain to the first uncovered call and ``{"window_s", "replicas"}``. Repair:
``retries: 1`` on every uncovered call, and ``load_balancer: round_robin`` for a consistently
hashed callee (the smallest change that lets a retry reach another replica).
"""

from __future__ import annotations

from faultmesh.model import properties as P
from faultmesh.model.system import System
from faultmesh.model.verify import checker
from faultmesh.model.verify.deadline import Deadline
from faultmesh.model.verify.sites import CallSite, call_sites, path_from_entries, successors_of
from faultmesh.model.verify.timeouts import seconds_text
from faultmesh.model.verify.verdict import Counterexample, Repair, Verdict


def window(system: System) -> float:
    """How long a caller can keep routing to a dead instance (client-side discovery)."""
    return system.discovery.ttl + system.discovery.refresh


def exposed(system: System, site: CallSite) -> bool:
    """Is this call one whose failure on a stale instance fails its caller?"""
    call = site.call
    return (not call.asynchronous and not call.optional and call.probability > 0
            and system.services[call.service].replicas >= 2)


def covers(system: System, site: CallSite) -> bool:
    """Can a retry of this call reach another replica?"""
    pinned = system.services[site.call.service].load_balancer.kind == "consistent_hash"
    return site.call.retries >= 1 and not pinned


@checker("staleness")
def check_staleness(system: System, prop: P.Property, deadline: Deadline) -> Verdict:
    if deadline.expired():
        return Verdict(prop.name, prop.kind, "unknown", "staleness: ran out of time")
    if system.discovery.mode == "server":
        return Verdict(prop.name, prop.kind, "holds",
                       "server-side discovery: callers always route to live instances")
    span = window(system)
    d = system.discovery
    lasting = (f"a dead instance stays in callers' views for up to {seconds_text(span)} "
               f"(ttl {seconds_text(d.ttl)} + refresh {seconds_text(d.refresh)})")
    sites = list(call_sites(system))
    checked = [s for s in sites if exposed(system, s)]
    uncovered = [s for s in checked if not covers(system, s)]
    if not checked:
        return Verdict(prop.name, prop.kind, "holds",
                       f"{lasting}; but no required call goes to a replicated service (with a "
                       "single replica there is no live one to route to instead: see survives)")
    if not uncovered:
        return Verdict(prop.name, prop.kind, "holds",
                       f"{lasting}; all {len(checked)} required calls into replicated services "
                       "retry on another replica")
    first = uncovered[0]
    callee = system.services[first.call.service]
    succ = successors_of(sites, lambda s: not s.call.asynchronous)
    prefix = path_from_entries(succ, system.entries, first.caller) or [first.caller]
    pinned = callee.load_balancer.kind == "consistent_hash"
    why = ("its retries go to the same replica (consistent_hash)" if pinned and
           first.call.retries else "it makes no retry")
    more = len(uncovered) - 1
    tail = f" (and {more} more call{'s' if more > 1 else ''})" if more else ""
    explanation = (f"{lasting}; {first.describe()} fails whenever it is routed there: {why}"
                   f"{tail}")
    changes: dict[str, object] = {}
    for site in uncovered:
        if site.call.retries < 1:
            changes[site.key("retries")] = 1
        if system.services[site.call.service].load_balancer.kind == "consistent_hash":
            changes[f"services.{site.call.service}.load_balancer"] = "round_robin"
    words = "add one retry to " + first.describe()
    if f"services.{first.call.service}.load_balancer" in changes:
        words = (f"balance {first.call.service} round_robin"
                 + (" and add one retry to " + first.describe() if not first.call.retries
                    else ""))
    if more:
        words += f" (and {more} more call{'s' if more > 1 else ''})"
    return Verdict(
        prop.name, prop.kind, "violated", explanation,
        Counterexample(chain=(*prefix, first.callee),
                       numbers={"window_s": span, "replicas": callee.replicas}),
        Repair(words, changes))


__all__ = ["check_staleness", "covers", "exposed", "window"]
