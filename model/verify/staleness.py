"""``staleness``: with client-side discovery, callers cover the window they route to the dead.

With ``discovery.mode: client`` each caller load-balances over its own cached view of a
service's instances. When an instance dies the registry keeps it until ``ttl`` after its last
heartbeat (at most ``ttl`` after the death, the last heartbeat having come just before), and a
caller's cache can lag the registry by up to ``refresh``. So for up to

    window = ttl + refresh

callers keep sending a share of their calls to a dead instance. With server-side discovery the
registry lists a crashed instance until readiness probes have failed ``failures`` times in a
row (up to ``period * failures``) and a zone outage's instances until the node grace period
``discovery.zone_detection`` has passed, so the window is the longer of the two
(``faultmesh.model.detection``, which the simulator's discovery uses too).

A call *covers* the window when one failed attempt on the dead instance is never the end of
the call: it has ``retries >= 1`` and ``retry_other_instance: true`` (Envoy's
``previous_hosts`` retry predicate: a retry goes to an instance this call has not tried yet,
so with one dead instance the first retry reaches a live one). Things that look like cover but
are not:

* plain retries: each attempt is load-balanced anew and may land on the same dead instance.
  With ``random`` balancing each attempt hits it with probability 1/n independently, so a call
  fails with probability exactly ``(1/n) ** (retries + 1)``; with ``round_robin`` and
  ``least_request`` the retry's pick depends on how other requests interleave (up to 1/n);
  with ``consistent_hash`` a key keeps its instance, so every retry goes to the same dead one
  (about 1/n of the keys fail whatever the retries);
* a circuit breaker: one dead replica out of n only adds about 1/n to the failure rate it sees
  (often under its threshold: it stays closed), and when it does open it refuses every call,
  the live replicas' included.

Outlier detection on the callee (``outlier_detection``, Envoy's, kept by each caller
instance) covers a call too when it ejects the dead instance at its *first* failed attempt: an
enabled threshold (``consecutive_5xx`` or ``consecutive_gateway_errors``: a refused connection
counts for both) of 1, room to eject one host (``max_ejection_percent`` of the replicas, see
``OutlierDetection.ejectable``) and ``retries >= 1``: the failed attempt ejects the host from
that caller instance's balancing set before the retry is balanced, and each return of the host
(at an interval tick) is ended by the next failed attempt the same way. With a larger threshold
T it only *bounds* the failures: each caller instance sends at most T failed attempts to the
dead instance between two ejections, each ejection lasts at least ``L = min(base_ejection_time,
max_ejection_time)``, so over the window at most

    T * (floor(window / L) + 2)

failed attempts per caller instance (hence at most that many failed calls), plus attempts
already in flight when the T-th fails (none when the refusal is immediate). The bound assumes
what this property assumes: one dead instance and live ones that answer (a live host failing
for another reason could use up the ejection room).

Checked: every required call (``Call.required``) into a service with at least two replicas
(with a single replica there is nothing live to route to, which is what ``survives`` is
about). Workload requests come through the ingress, which is not a caller with its own
policies, and are not checked.

Violated with the chain to the first uncovered call and ``{"window_s", "replicas",
"failure_probability"}`` (the share of that call's requests that fail while one of the
callee's instances is dead and still in view: exact for ``random``, an upper bound for the
other balancers). Repair, in the fewest keys: ``retries: 1`` where there is none,
``retry_other_instance: true`` where it is not set and the callee's outlier detection does not
already eject at the first failure, the call's circuit breaker off, the callee's
``max_retries`` lifted; then the least timeout raises that nest them again.
"""

from __future__ import annotations

import math
from dataclasses import replace

from faultmesh.model import properties as P
from faultmesh.model.detection import stale_window
from faultmesh.model.system import FrozenMap, System
from faultmesh.model.units import format_duration
from faultmesh.model.verify import checker
from faultmesh.model.verify.deadline import Deadline, out_of_time
from faultmesh.model.verify.sites import (
    CallSite,
    call_sites,
    path_from_entries,
    successors_of,
    with_call_fields,
)
from faultmesh.model.verify.timeouts import (
    decimal,
    least_timeouts,
    no_timeout_repair,
    site_network,
    worst_cases,
)
from faultmesh.model.verify.verdict import Counterexample, Repair, Verdict


def window(system: System) -> float:
    """How long a caller can keep routing to a dead instance (either discovery mode)."""
    return stale_window(system)


def exposed(system: System, site: CallSite) -> bool:
    """Is this call one whose failure on a stale instance fails its caller?"""
    return site.call.required and system.services[site.call.service].replicas >= 2


def ejection_threshold(system: System, site: CallSite) -> int | None:
    """Failed attempts on a dead callee instance that get it ejected (None: never ejected)."""
    callee = system.services[site.call.service]
    policy = callee.outlier_detection
    if policy is None or policy.ejectable(callee.replicas) == 0:
        return None
    # A refused connection is a gateway error: it counts for both detectors.
    enabled = [t for t in (policy.consecutive_5xx, policy.consecutive_gateway_errors) if t > 0]
    return min(enabled) if enabled else None


def failed_attempts_bound(system: System, site: CallSite) -> int | None:
    """At most this many attempts per caller instance fail on one dead callee instance over
    the stale window, thanks to outlier detection (None: no bound from it)."""
    threshold = ejection_threshold(system, site)
    if threshold is None:
        return None
    policy = system.services[site.call.service].outlier_detection
    assert policy is not None
    shortest = min(policy.base_ejection_time, policy.max_ejection_time)
    if shortest <= 0:
        return None
    return threshold * (math.floor(window(system) / shortest) + 2)


def redirects(system: System, site: CallSite) -> bool:
    """Is a retry of this call sure to reach another replica?"""
    if site.call.retries < 1:
        return False
    if system.services[site.call.service].max_retries is not None:
        # Envoy's max_retries can refuse the retry (that many already in flight): not sure.
        return False
    return site.call.retry_other_instance or ejection_threshold(system, site) == 1


def nests(system: System, site: CallSite) -> bool:
    """Does a live instance answer this call's attempt before its timeout (the
    ``timeouts_nest`` condition for this one call: the callee's worst case, its unbounded
    draws at their p99.9, plus the round trip)? If not, a retry that reached a live instance
    can still time out, and the attempts after it go back to the dead one once every
    instance has been tried (``previous_hosts`` then allows any host)."""
    worst = worst_cases(system)[site.callee] + site_network(system, site)
    return decimal(site.call.timeout) > worst


def gaps(system: System, site: CallSite) -> list[str]:
    """Why a call that retries on another replica is still not covered (empty: covered)."""
    found = []
    if site.call.circuit_breaker is not None:
        # The breaker records every attempt, the refused one included: failures on the dead
        # instance can open it (several calls' first attempts in a row, or a failure rate over
        # its window), and an open breaker refuses every call, the live replicas' too.
        found.append("its circuit breaker counts the attempts refused by the dead instance "
                     "and may open, refusing every call")
    if not nests(system, site):
        found.append("its timeout is below the callee's worst case, so the retry on a live "
                     "instance can time out and the next attempt go back to the dead one")
    return found


def covers(system: System, site: CallSite) -> bool:
    """Is the call sure not to fail while one callee instance is dead but in view?"""
    return redirects(system, site) and not gaps(system, site)


def exact(system: System, site: CallSite) -> bool:
    """Is ``failure_probability`` exact (else an upper bound)? Only for ``random`` balancing
    with nothing else steering or limiting the attempts (a breaker only adds failures)."""
    callee = system.services[site.call.service]
    return (callee.load_balancer.kind == "random" and callee.max_retries is None
            and not redirects(system, site) and ejection_threshold(system, site) is None)


def failure_probability(system: System, site: CallSite) -> float:
    """Share of the call's requests that fail while one callee instance is dead but in view.

    Exact for ``random`` (each attempt independently hits the dead one of n with 1/n); an
    upper bound for the others: ``consistent_hash`` pins a key to one instance (about 1/n of
    the keys), and ``round_robin``/``least_request`` send the first attempt there at most
    about 1/n of the time, the retry depending on interleaved traffic.
    """
    if covers(system, site):
        return 0.0
    callee = system.services[site.call.service]
    share = 1.0 / callee.replicas
    if site.call.circuit_breaker is not None and redirects(system, site):
        return 1.0  # all that is certain: an open breaker refuses every call
    if callee.load_balancer.kind == "random" and not redirects(system, site) \
            and callee.max_retries is None:
        return share ** site.call.attempts
    return share


@checker("staleness")
def check_staleness(system: System, prop: P.Property, deadline: Deadline) -> Verdict:
    if deadline.expired():
        return out_of_time(prop, deadline)
    span = window(system)
    d = system.discovery
    if d.mode == "server":
        lasting = (f"server-side discovery lists a dead instance for up to "
                   f"{format_duration(span)} (until its readiness probes fail, or a zone "
                   f"outage's node grace period of {format_duration(d.zone_detection)})")
    else:
        lasting = (f"a dead instance stays in callers' views for up to {format_duration(span)} "
                   f"(ttl {format_duration(d.ttl)} + refresh {format_duration(d.refresh)})")
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
                       "retry on another replica (retry_other_instance, or outlier detection "
                       "that ejects the dead one at its first failed attempt)")
    first = uncovered[0]
    callee = system.services[first.call.service]
    succ = successors_of(sites, lambda s: not s.call.asynchronous)
    prefix = path_from_entries(succ, system.entries, first.caller) or [first.caller]
    balancer = callee.load_balancer.kind
    chance = failure_probability(system, first)
    if redirects(system, first):
        why = "; ".join(gaps(system, first))
    elif not first.call.retries:
        why = "it makes no retry"
    elif balancer == "consistent_hash":
        why = "its retries go to the same instance (consistent_hash pins the key)"
    else:
        why = (f"each of its {first.call.attempts} attempts is balanced anew ({balancer}) and "
               "may pick the same dead instance (no retry_other_instance)")
    exactly = "exactly" if exact(system, first) else "up to"
    more = len(uncovered) - 1
    tail = f" (and {more} more call{'s' if more > 1 else ''})" if more else ""
    bound = failed_attempts_bound(system, first)
    if bound is not None:
        callers = system.services[first.caller_service].replicas
        why += (f"; outlier detection bounds it to {bound} failed attempts per caller "
                f"instance ({callers} caller instance{'s' if callers > 1 else ''}) over the "
                "window")
    explanation = (f"{lasting}; {first.describe()} fails when it is routed there, {exactly} "
                   f"{chance:.4g} of its requests while one of {callee.replicas} instances is "
                   f"dead: {why}{tail}")
    changes, retried = _cover(system, uncovered)
    # A retry lengthens its caller's worst case, so the timeouts are nested last, over the
    # system with the retries added (the least raises; none exist around a call cycle).
    raised = least_timeouts(retried)
    words = ("retry " + first.describe() + " on another instance"
             + (" (one retry, retry_other_instance)" if not first.call.retries
                else " (retry_other_instance)"))
    if more:
        words += f" (and {more} more call{'s' if more > 1 else ''})"
    lifted = [key.split(".")[1] for key in changes if key.endswith(".max_retries")]
    if lifted:
        words += f"; lift the max_retries of {', '.join(lifted)}"
    if raised is None:  # the retries it adds leave no timeouts that nest
        explanation += f"; {no_timeout_repair(deadline)}"
    return Verdict(
        prop.name, prop.kind, "violated", explanation,
        Counterexample(chain=(*prefix, first.callee),
                       numbers={"window_s": span, "replicas": callee.replicas,
                                "failure_probability": chance,
                                "failure_probability_exact": float(exact(system, first)),
                                **({} if bound is None
                                   else {"failed_attempts_per_caller_instance": bound})}),
        None if raised is None else Repair(words, {**changes, **raised}))


def _cover(system: System, uncovered: list[CallSite]) -> tuple[dict[str, object], System]:
    """The fewest keys that make each uncovered call redirect its retry: ``retries: 1`` where
    it has none; ``retry_other_instance: true`` unless it is already set or the callee's
    outlier detection ejects at the first failure; the call's breaker off (``gaps``); and the
    callee's ``max_retries`` lifted, since Envoy may refuse the retry at that limit
    (``redirects``). (Timeouts are raised after, over the system with these changes.)

    Returns the changes as spec keys and the System they give, built directly (the same
    System as writing them into the spec and loading it again, without the round trip)."""
    changes: dict[str, object] = {}
    fields: list[tuple[CallSite, dict[str, object]]] = []  # the same changes, as Call fields
    lifted: set[str] = set()
    for site in uncovered:
        mine: dict[str, object] = {}
        fields.append((site, mine))
        if site.call.retries < 1:
            changes[site.key("retries")] = mine["retries"] = 1
        if not site.call.retry_other_instance and ejection_threshold(system, site) != 1:
            changes[site.key("retry_other_instance")] = mine["retry_other_instance"] = True
        if site.call.circuit_breaker is not None:
            changes[site.key("circuit_breaker")] = "none"
            mine["circuit_breaker"] = None
        if system.services[site.call.service].max_retries is not None:
            changes[f"services.{site.call.service}.max_retries"] = "unlimited"
            lifted.add(site.call.service)
    retried = with_call_fields(system, [(site, f) for site, f in fields if f])
    if lifted:
        retried = replace(retried, services=FrozenMap({
            name: replace(s, max_retries=None) if name in lifted else s
            for name, s in retried.services.items()}))
    return changes, retried


__all__ = ["check_staleness", "covers", "ejection_threshold", "exact", "exposed",
           "failed_attempts_bound", "failure_probability", "gaps", "nests", "redirects",
           "window"]
