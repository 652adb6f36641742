"""Differential testing of the verifier against the simulator (a library; tests live elsewhere).

``check(system, settings)`` verifies ``survives``, ``capacity``, ``staleness`` and
``timeouts_nest`` and, for each verdict, simulates the adversarial scenarios the property
quantifies over: a ``holds`` must show no violation beyond the stated statistical tolerance, a
``violated`` must be reproduced by replaying its counterexample. It returns one ``Finding`` per
(property, scenario); ``agrees`` is False on a disagreement.

What each property promises, as measured here (the README's "What the verifier assumes about
the simulator" says it in prose; the constants below are the stated tolerances):

* **survives**: on a *light* copy (workers scaled below ``LIGHT`` utilisation: survives does not
  read workers, so capacity cannot confound it), each failure set within K is held down; requests
  arriving after ``settle_time`` never fail for a dead instance (``REACHABILITY`` root causes,
  zero tolerance; ``circuit open`` no more often than fault-free), except the share the verifier
  gives a degraded entry (checked against its Wilson interval). A violated replays
  (``simulations.replay.replay``, the system as written): entries in ``down`` serve nothing.
* **capacity** at nominal load: each surviving instance's utilisation stays below the target
  (``Z`` standard errors of compound-Poisson work), rejections below ``REJECTED_AT_MOST``. A
  violated shows overload on its chain, and ``replay`` agrees.
* **staleness**: an instance of a replicated callee of a required call crashes; during the stale
  window no entry request fails for it. A violated shows such failures.
* **timeouts_nest**: a probe in the caller's zones calls the callee with the site's timeout and
  no retry while the callee's dependencies hang; a probe timeout is orphaned work, tolerated up
  to the chance of a p99.9 tail or of queueing (``_tolerance``). A violated shows one.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from faultmesh.model import properties as P
from faultmesh.model.distributions import Constant
from faultmesh.model.faults import Crash, Fault, LatencyFault, Scenario, parse_target
from faultmesh.model.spec import from_document, to_document
from faultmesh.model.system import System, step_calls
from faultmesh.model.verify import verify
from faultmesh.model.verify.failures import FailureKinds, FailureSet, worst_removal
from faultmesh.model.verify.load import offered_load
from faultmesh.model.verify.sites import CallSite, call_sites
from faultmesh.model.verify.verdict import Verdict
from faultmesh.simulations import simulate
from faultmesh.simulations.replay import SHED_NOISE, caller_shed, replay

CONFIDENCE = 0.999  # of every statistical bound below (one-sided)
Z = NormalDist().inv_cdf(CONFIDENCE)
LIGHT = 0.3  # survives/staleness run at most this utilisation, so capacity cannot interfere
LIGHT_TIMEOUTS = 0.01  # timeouts_nest probes: queueing for a worker (P <= rho) must be rare
SLACK = 2.0  # seconds after breakers may close before measuring (calls in flight, backoff)
REJECTED_AT_MOST = 0.01  # capacity holds: a service rejects at most this share of requests
TAIL = 0.001  # the verifier's stand-in for an unbounded draw's worst case is its p99.9
OVERRUN = 4  # a verifier still deciding after this many times its timeout is stuck
HUNG = 1e6  # seconds a hung dependency keeps a request in transit (beyond any run)
REACHABILITY = ("no instance", "instance down")  # root causes only a dead instance produces
BREAKER = "circuit open"
PROBE = "zzprobe"
KINDS = ("survives", "capacity", "staleness", "timeouts_nest")


@dataclass(frozen=True)
class Settings:
    """How hard to look: simulated seconds measured, scenarios per property, seed."""

    seed: int = 1
    crash_at: float = 5.0
    measure: float = 20.0
    max_failure_sets: int = 4
    max_sites: int = 2
    verify_timeout: float = 10.0


FAST = Settings()
THOROUGH = Settings(measure=60.0, max_failure_sets=12, max_sites=6)


@dataclass(frozen=True)
class Finding:
    kind: str  # the property kind
    status: str  # the verifier's verdict
    scenario: str  # what was simulated
    agrees: bool
    detail: str = ""


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score bounds of a proportion k/n at ``CONFIDENCE`` (one-sided each)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    # Exact at the ends (floating-point rounding would leave 1e-17 there).
    low = 0.0 if k == 0 else max(0.0, centre - half)
    return low, 1.0 if k == n else min(1.0, centre + half)


def exceeds(k: int, n: int, k0: int, n0: int) -> bool:
    """Is k/n confidently above the baseline k0/n0 (non-overlapping Wilson bounds)?"""
    return k > 0 and wilson(k, n)[0] > wilson(k0, n0)[1]


# --- systems and runs -------------------------------------------------------------------------


def _rebuilt(system: System, edit: Any) -> System:
    document = to_document(system)
    edit(document)
    return from_document(document, f"<{system.name} for agreement>")


def light(system: System, target: float = LIGHT, *, entry_timeouts: bool = True) -> System:
    """The system with workers scaled so one instance alone could carry a service's load (with
    every retry made) below ``target`` utilisation: reachability and timing without queueing.
    Without ``entry_timeouts`` the workload's timeouts go too: survives and staleness are
    about reachability, and a request the client gave up on never shows whether its calls
    would have failed for a dead instance."""
    load = offered_load(system)

    def edit(document: dict[str, Any]) -> None:
        if not entry_timeouts:
            for item in document["workload"]:
                item.pop("timeout", None)
        for name in system.services:
            _, demand, _ = load.service(system, name)
            need = math.ceil(float(demand) / target) if demand else 1
            spec = document["services"][name]
            spec["workers"] = max(spec["workers"], need)
            spec.pop("concurrency", None)
            spec.pop("queue", None)
    return _rebuilt(system, edit)


def settle_time(system: System) -> float:
    """Seconds after a crash until views are fresh and breakers opened by it have closed."""
    from faultmesh.model.detection import stale_window

    open_for = max((c.circuit_breaker.open_for for s in system.services.values()
                    for e in s.endpoints.values() for c in e.calls()
                    if c.circuit_breaker is not None), default=0.0)
    backoff = max((c.backoff.cap for s in system.services.values()
                   for e in s.endpoints.values() for c in e.calls()), default=0.0)
    return stale_window(system) + open_for + backoff + SLACK


def run(system: System, faults: tuple[Fault, ...], start: float, end: float,
        seed: int) -> dict[str, Any]:
    """Summary of a run whose statistics cover requests arriving in [start, end)."""
    summary: dict[str, Any] = dict(
        simulate(system, Scenario("agreement", faults, end, start), seed=seed).summary)
    return summary


def crashes(units: tuple[str, ...], at: float) -> tuple[Fault, ...]:
    return tuple(Crash(at=at, duration=HUNG, target=parse_target(u)) for u in units)


def failure_units(system: System, of: tuple[str, ...]) -> list[str]:
    units = []
    if "instance" in of:
        units += [f"instance:{i.name}" for i in system.instances]
    if "zone" in of:
        units += [f"zone:{z}" for z in system.zones]
    return units


def failure_sets(system: System, of: tuple[str, ...], budget: int,
                 settings: Settings) -> list[tuple[str, ...]]:
    """Every failure set of size ``budget`` (availability only falls as failures grow) when
    there are few, else the worst one per service plus a seeded sample."""
    units = failure_units(system, of)
    size = min(budget, len(units))
    if size == 0:
        return []
    if math.comb(len(units), size) <= settings.max_failure_sets:
        return list(itertools.combinations(units, size))
    kinds = FailureKinds.of(of)
    chosen = dict.fromkeys(worst_removal(s, kinds, size)[1] for s in system.services.values())
    rng = random.Random(settings.seed)
    while len(chosen) < min(settings.max_failure_sets, math.comb(len(units), size)):
        chosen.setdefault(tuple(sorted(rng.sample(units, size))))
    ordered = list(chosen)
    return ordered[:settings.max_failure_sets]


# --- survives ---------------------------------------------------------------------------------


def shares(system: System, units: tuple[str, ...]) -> dict[str, float]:
    """The share of each entry's requests the verifier says survive ``units`` failing (below 1
    for an entry degraded by calls made with probability < 1); all 1 if it does not say."""
    try:
        from faultmesh.model.verify.cones import availability
    except ImportError:  # a verifier without degraded entries: up means every request served
        return dict.fromkeys(system.entries, 1.0)
    share = availability(system, FailureSet(units).services_down(system))
    return {e: share[e] for e in system.entries}


def _reachability(summary: dict[str, Any], base: dict[str, Any], expected: dict[str, float],
                  allowed: dict[str, float] | None = None) -> list[str]:
    """Entries whose requests fail for a dead instance beyond what the verifier predicts: any
    such failure for an entry predicted whole (beyond an ``allowed`` share: its Wilson lower
    bound above it; or ``circuit open`` beyond the fault-free rate); a share outside the
    Wilson interval for a degraded one."""
    bad = []
    allowed = allowed or {}
    for entry, share in expected.items():
        stats, ref = summary["entries"][entry], base["entries"][entry]
        roots, n = stats["root_causes"], stats["requests"]
        hard = sum(roots.get(c, 0) for c in REACHABILITY)
        breaker = roots.get(BREAKER, 0)
        if 0.0 < share < 1.0:  # (0 would be down, which these entries are promised not to be)
            low, high = wilson(hard + breaker, n)
            if not low <= 1.0 - share <= high:
                bad.append(f"{entry}: {hard + breaker} of {n} requests failed for a dead "
                           f"instance; the verifier predicts a share of {1 - share:.2%}")
        elif hard and wilson(hard, n)[0] > allowed.get(entry, 0.0):
            bad.append(f"{entry}: {hard} of {n} requests failed for a dead instance "
                       f"({ {c: roots[c] for c in REACHABILITY if c in roots} })")
        elif exceeds(breaker, n, ref["root_causes"].get(BREAKER, 0), ref["requests"]):
            bad.append(f"{entry}: {breaker} of {n} circuit open (fault-free: "
                       f"{ref['root_causes'].get(BREAKER, 0)} of {ref['requests']})")
    return bad


def _ejection_allowance(system: System, prop: P.Survives,
                        base: dict[str, Any]) -> dict[str, float]:
    """Per entry, the share of requests allowed to fail for want of an instance: the
    fault-free run's (Wilson upper bound) when outlier detection may eject every live host of
    some service (``survives.ejectable``), else nothing."""
    from faultmesh.model.verify.survives import ejectable
    from faultmesh.model.verify.thinning import Failing

    failing, kinds = Failing(system), FailureKinds.of(prop.of)
    if not any(ejectable(system, s, kinds, j, failing) for s in system.services.values()
               for j in range(prop.failures + 1)):
        return {}
    out = {}
    for entry in system.entries:
        stats = base["entries"][entry]
        hard = sum(stats["root_causes"].get(c, 0) for c in REACHABILITY)
        out[entry] = wilson(hard, stats["requests"])[1] if hard else 0.0
    return out


def check_survives(system: System, prop: P.Survives, verdict: Verdict,
                   settings: Settings) -> list[Finding]:
    lit = light(system, entry_timeouts=False)
    at = settings.crash_at
    start = at + settle_time(system)
    end = start + settings.measure
    base = run(lit, (), start, end, settings.seed)
    findings = []
    # Where callers' outlier detection may eject every live host of a needed service (the
    # verifier then never says holds), requests fail "no instance" with no fault at all: the
    # fault-free rate of that (its Wilson upper bound) is allowed everywhere.
    allowed = _ejection_allowance(system, prop, base)
    if bad := _reachability(base, base, shares(system, ()), allowed):
        findings.append(Finding("survives", verdict.status, "no fault", False, "; ".join(bad)))
    if verdict.status == "holds":
        for units in failure_sets(system, prop.of, prop.failures, settings):
            got = run(lit, crashes(units, at), start, end, settings.seed)
            bad = _reachability(got, base, shares(system, units))
            findings.append(Finding("survives", "holds", "crash " + ", ".join(units),
                                    not bad, "; ".join(bad)))
        return findings
    cex = verdict.counterexample
    assert cex is not None
    result = replay(system, verdict, at=at, duration=end - at, settle=start - at, after=1.0,
                    seed=settings.seed)
    frame = result.run.timeline
    # Whole bins only: a bin reaching past ``end`` holds requests served after the recovery.
    width = float(frame["time_s"].drop_duplicates().diff().min())
    window = frame[(frame["time_s"] >= start) & (frame["time_s"] + width <= end)]
    wrong = []
    for entry in cex.down:
        rows = window[window["entry"] == entry]
        ok, requests = int(rows["ok"].sum()), int(rows["requests"].sum())
        if ok:
            wrong.append(f"{entry} predicted down served {ok} of {requests} requests")
    expected = {e: v for e, v in shares(system, cex.failures).items() if e not in cex.down}
    got = run(lit, crashes(cex.failures, at), start, end, settings.seed)
    wrong += _reachability(got, base, expected, allowed)
    findings.append(Finding("survives", "violated", "replay " + ", ".join(cex.failures),
                            not wrong, "; ".join(wrong)))
    return findings


# --- capacity ---------------------------------------------------------------------------------


def _second_moment(system: System, service: str) -> float:
    """E[S^2] of the service's service times, over its endpoints (midpoint quantile rule)."""
    values = []
    for endpoint in system.services[service].endpoints.values():
        d = endpoint.service_time
        values.append(sum(d.quantile((i + 0.5) / 400) ** 2 for i in range(400)) / 400)
    return max(values, default=0.0)


def overloads(system: System, summary: dict[str, Any], service: str, limit: float,
              rejected: float, measured: float, dead: FailureSet, *, sure: bool) -> list[str]:
    """Signs of overload of ``service`` in the run: a surviving instance at or above ``limit``
    utilisation, or a rejected share above ``rejected``; ``sure``: confidently (a holds is
    contradicted), else merely consistent with it (a violated is reproduced)."""
    s, stats = system.services[service], summary["services"][service]
    if not sure and dead.surviving(s) == 0:
        return [f"{service} has no instance left"]
    sign, found = (-1 if sure else 1), []
    second = _second_moment(system, service)
    for instance in s.instances:
        if instance.name in dead.instances or instance.zone in dead.zones:
            continue
        i = stats["instances"][instance.name]
        noise = Z * math.sqrt(i["requests"] * second) / (s.workers * measured)
        if i["utilization"] + sign * noise >= limit:
            found.append(f"{instance.name} at {i['utilization']:.1%} (+-{noise:.1%}) >= "
                         f"{limit:.0%}")
    low, high = wilson(stats["rejected"], stats["requests"])
    if (low > rejected) if sure else (high >= rejected):
        found.append(f"{service} rejected {stats['rejected']} of {stats['requests']}")
    return found


def check_capacity(system: System, prop: P.Capacity, verdict: Verdict,
                   settings: Settings) -> list[Finding]:
    at = settings.crash_at
    start = at + settle_time(system)
    end = start + settings.measure
    loaded = [name for name in system.services
              if offered_load(system).service(system, name)[0] > 0]
    # The property's own bound on rejections where it states one, else ours.
    rejected = float(getattr(prop, "rejected", REJECTED_AT_MOST))
    findings = []
    if verdict.status == "holds":
        for units in [(), *failure_sets(system, prop.of, prop.failures, settings)]:
            got = run(system, crashes(units, at), start, end, settings.seed)
            dead = FailureSet(units)
            bad = [why for name in loaded
                   for why in overloads(system, got, name, prop.utilization, rejected,
                                        settings.measure, dead, sure=True)]
            findings.append(Finding("capacity", "holds",
                                    "crash " + (", ".join(units) or "nothing"), not bad,
                                    "; ".join(bad)))
        return findings
    cex = verdict.counterexample
    assert cex is not None
    got = run(system, crashes(cex.failures, at), start, end, settings.seed)
    dead = FailureSet(cex.failures)
    chain = list(dict.fromkeys(n.partition(".")[0] for n in cex.chain)) or list(cex.down)
    # Rejections reproduce the counterexample only where it claims them (at least its
    # ``rejected_low`` share); otherwise the claim is about utilisation, and a service with
    # limits loaded to or past the target sheds the excess instead of queueing it: rejecting
    # more than the property allows shows it as well (``replay`` reads it the same way).
    predicted = cex.numbers.get("utilization")
    claimed = cex.numbers.get("rejected_low", cex.numbers.get("rejected", math.inf))
    if cex.down and system.services[cex.down[0]].load_balancer.kind == "consistent_hash":
        # The claim is the busiest instance's loss; the run counts the whole service's, at
        # least that instance's share of it (the others, less loaded, lose less).
        claimed *= cex.numbers.get("share", 1.0)
    if predicted is not None and predicted >= prop.utilization:
        claimed = rejected
    shown = [name for name in chain if overloads(system, got, name, prop.utilization,
                                                 claimed if name in cex.down else math.inf,
                                                 settings.measure, dead, sure=False)]
    if not shown and predicted is not None and predicted >= 1:
        # Past saturation its callers may shed the load first: every host ejected by outlier
        # detection (timeouts count as gateway errors), or their breakers open.
        for name in cex.down:
            shed = caller_shed(system, got, name)
            offered = shed + got["services"][name]["requests"]
            if offered and shed / offered > max(rejected, SHED_NOISE):
                shown.append(f"{name}: its callers shed {shed} of {offered} attempts")
    detail = "" if shown else f"no service on {' -> '.join(chain)} overloaded: " + ", ".join(
        f"{n} {got['services'][n]['utilization']:.1%}" for n in chain)
    scenario = "crash " + (", ".join(cex.failures) or "nothing")
    findings.append(Finding("capacity", "violated", scenario, bool(shown), detail))
    try:
        result = replay(system, verdict, at=at, duration=end - at, settle=start - at,
                        after=1.0, seed=settings.seed)
        agrees, why = result.agrees, "" if result.agrees else f"replay: {result.to_json()}"
    except ValueError as exc:
        agrees, why = False, f"replay refused: {exc}"
    findings.append(Finding("capacity", "violated", "replay " + scenario, agrees, why))
    return findings


# --- staleness --------------------------------------------------------------------------------


def check_staleness(system: System, verdict: Verdict, settings: Settings) -> list[Finding]:
    from faultmesh.model.detection import stale_window

    span = stale_window(system)
    if span <= 0 or not system.entries:
        return []
    exposed = [s for s in call_sites(system) if s.call.required
               and system.services[s.call.service].replicas >= 2]
    cex = verdict.counterexample
    if verdict.status == "violated":
        assert cex is not None and cex.chain
        targets = [cex.chain[-1].partition(".")[0]]
    else:
        targets = list(dict.fromkeys(s.call.service for s in exposed))[:settings.max_sites]
    # Queueing is kept as rare as for timeouts_nest: a covered call is one whose retry on a
    # live instance is answered in time, which the verifier's worst case (no queueing, draws
    # at their p99.9) promises up to ``_tolerance``; a live attempt that times out lets the
    # next one go back to the dead instance, once every instance has been tried.
    lit = light(system, LIGHT_TIMEOUTS, entry_timeouts=False)
    allowed = {e: _tolerance(system, e) for e in system.entries}
    at = settings.crash_at
    end = at + span + SLACK
    base = run(lit, (), at, end, settings.seed)
    findings = []
    for service in targets:
        unit = f"instance:{service}-0"
        got = run(lit, crashes((unit,), at), at, end, settings.seed)
        # The survives criterion, every entry whole: no request may fail for the dead one.
        # The tail tolerance excuses a holds; a violated is shown by any such failure.
        bad = _reachability(got, base, dict.fromkeys(system.entries, 1.0),
                            allowed if verdict.status == "holds" else None)
        if cex is not None and not bad and len(cex.chain) >= 2:
            # The uncovered call may sit below an optional call (its caller fails, the entry
            # is only degraded): its own failures show the violation then.
            edge = f"{cex.chain[-2].partition('.')[0]}->{service}"
            mine, ref = got["calls"].get(edge), base["calls"].get(edge)
            if mine and ref and exceeds(mine["failed"], mine["calls"], ref["failed"],
                                        ref["calls"]):
                bad = [f"{edge}: {mine['failed']} of {mine['calls']} calls failed "
                       f"({mine['causes']})"]
        failed, words = bool(bad), "; ".join(bad)
        if verdict.status == "holds" or cex is None:
            findings.append(Finding("staleness", "holds", f"crash {unit} (stale {span:g}s)",
                                    not failed, words))
            continue
        agrees, detail = failed, words
        if not failed and cex.chain[0] not in system.entries:
            # No workload request reaches that call: nothing can show it (nor contradict it).
            agrees, detail = True, f"{' -> '.join(cex.chain)} is not reached by the workload"
        elif not failed:
            p = float(cex.numbers.get("failure_probability", 1.0))
            calls = sum(v["calls"] for k, v in got["calls"].items()
                        if k.endswith(f"->{service}"))
            likely_none = (1.0 - p) ** calls
            # The probability is exact for random balancing only, else an upper bound (seeing
            # no failure then contradicts nothing); the verifier says which.
            exact = bool(cex.numbers.get(
                "failure_probability_exact",
                system.services[service].load_balancer.kind == "random"))
            agrees = likely_none >= 1 - CONFIDENCE or not exact
            detail = (f"no stale failure in {calls} calls; with failure probability {p:g} "
                      f"that has chance {likely_none:.3g}")
        findings.append(Finding("staleness", "violated", f"crash {unit} (stale {span:g}s)",
                                agrees, detail))
    return findings


# --- timeouts_nest ----------------------------------------------------------------------------


def _awaited_targets(system: System, endpoint: str, last_only: bool) -> list[str]:
    """The endpoints ``endpoint`` awaits (all steps, or its last step that awaits any)."""
    steps = []
    for step in system.endpoint(endpoint).steps:
        members = step_calls(step)  # every call form's calls (a one_of's: any may be made)
        awaited = [c.target for c in members if not c.asynchronous and c.probability > 0]
        if awaited:
            steps.append(awaited)
    if not steps:
        return []
    return steps[-1] if last_only else [t for s in steps for t in s]


def _tolerance(system: System, endpoint: str) -> float:
    """Chance a probe attempt legitimately exceeds the verifier's worst case: one unbounded
    draw (service time, network hop) beyond its p99.9, or queueing for a worker somewhere."""
    net = sum(not math.isfinite(d.upper) for d in (system.communication.same_zone_latency,
                                                  system.communication.cross_zone_latency))
    draws, services, seen, stack = 2.0 * bool(net), set(), set(), [(endpoint, 1)]
    while stack:
        name, times = stack.pop()
        services.add(name.partition(".")[0])
        draws += times * (not math.isfinite(system.endpoint(name).service_time.upper))
        if name in seen:
            continue
        seen.add(name)
        for call in system.endpoint(name).calls():
            if not call.asynchronous and call.probability > 0:
                many = times * call.repeat * call.attempts
                draws += 2 * many * bool(net)
                stack.append((call.target, many))
    return min(1.0, TAIL * draws + LIGHT_TIMEOUTS * (len(services) + 1))


def _probe(system: System, site: CallSite | None, entry: str) -> System:
    """The light system plus (for a call site) a probe service calling its callee as the
    site's caller would: same zones, same timeout, no retry, no breaker."""
    if site is None:
        return light(system, LIGHT_TIMEOUTS)
    zones = system.services[site.caller_service].zones

    def edit(document: dict[str, Any]) -> None:
        document["services"][PROBE] = {
            "placement": {z: zones.count(z) for z in dict.fromkeys(zones)},
            "endpoints": {"p": {"calls": [{"call": site.callee, "timeout": site.call.timeout,
                                           "retries": 0, "backoff": "none"}]}}}
        document["workload"].append({"entry": f"{PROBE}.p", "rate": 10})
    return light(_rebuilt(system, edit), LIGHT_TIMEOUTS)


def _orphans(system: System, site: CallSite | None, entry: str, settings: Settings
             ) -> list[tuple[str, int, int, float]]:
    """(scenario, timeouts, attempts, tolerance) per adversary for one call site (None: the
    workload's timeout on ``entry``)."""
    probe = _probe(system, site, entry)
    callee = site.callee if site is not None else entry
    tolerance = _tolerance(system, callee)
    plans = {"callee as is": [], "all dependencies hung": _awaited_targets(system, callee, False),
             "last step hung": _awaited_targets(system, callee, True)}
    out, done = [], set()
    for name, hung in plans.items():
        if tuple(hung) in done:
            continue
        done.add(tuple(hung))
        faults = tuple(LatencyFault(at=0.0, target=parse_target(t), add=Constant(HUNG))
                       for t in dict.fromkeys(hung))
        got = run(probe, faults, 1.0, 1.0 + settings.measure, settings.seed)
        if site is None:
            stats = got["entries"][entry]
            timeouts, attempts = stats["outcomes"]["timeout"], stats["requests"]
        else:
            edge = got["calls"].get(f"{PROBE}->{site.call.service}", {"calls": 0, "causes": {}})
            timeouts, attempts = edge["causes"].get("timeout", 0), edge["calls"]
        out.append((name, timeouts, attempts, tolerance))
    return out


def check_timeouts(system: System, verdict: Verdict, settings: Settings) -> list[Finding]:
    awaited = [s for s in call_sites(system) if not s.call.asynchronous]
    probes: list[tuple[CallSite | None, str]]
    if verdict.status == "violated":
        cex = verdict.counterexample
        assert cex is not None and len(cex.chain) >= 2
        caller, callee = cex.chain[-2], cex.chain[-1]
        matching = [s for s in awaited if s.caller == caller and s.callee == callee]
        exact = [s for s in matching if abs(s.call.timeout - cex.numbers.get("timeout", -1))
                 < 1e-9]
        probes = [((exact or matching)[0], callee)] if matching else [(None, callee)]
    else:
        rng = random.Random(settings.seed)
        chosen = rng.sample(awaited, min(settings.max_sites, len(awaited)))
        probes = [(s, s.callee) for s in chosen]
        probes += [(None, w.entry) for w in system.workload if w.timeout is not None]
    findings = []
    for site, entry in probes:
        where = site.describe() if site is not None else f"workload -> {entry}"
        results = _orphans(system, site, entry, settings)
        if verdict.status == "holds":
            for name, timeouts, attempts, tolerance in results:
                bad = wilson(timeouts, attempts)[0] > tolerance
                findings.append(Finding(
                    "timeouts_nest", "holds", f"{where}, {name}", not bad,
                    f"{timeouts} of {attempts} attempts timed out while the callee worked "
                    f"(tolerance {tolerance:.3g})" if bad else ""))
        else:
            # Reproduced by any orphaned timeout; seeing none only disagrees when a tail event
            # (the verifier's p99.9 stand-in) would likely have shown up in that many attempts.
            shown = any(t > 0 for _, t, _, _ in results)
            attempts = sum(n for _, _, n, _ in results)
            unlikely = (1 - TAIL) ** attempts < 1 - CONFIDENCE
            findings.append(Finding(
                "timeouts_nest", "violated", where, shown or not unlikely,
                "" if shown else "no orphaned timeout: " + ", ".join(
                    f"{name} {t}/{n}" for name, t, n, _ in results)))
    return findings


# --- all of it --------------------------------------------------------------------------------


class Overrun(Exception):
    """The verifier kept going long past its ``timeout``."""


@contextlib.contextmanager
def _overrun(seconds: float) -> Iterator[None]:
    """Raise ``Overrun`` in the main thread after ``seconds`` of wall-clock time."""
    def stop(_signal: int, _frame: object) -> None:
        raise Overrun(f"verification still running after {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def properties_of(system: System) -> list[P.Property]:
    """The spec's properties of the four kinds compared here."""
    return [p for p in system.properties if p.kind in KINDS]


def check(system: System, settings: Settings = FAST) -> list[Finding]:
    """Verify the system's survives/capacity/staleness/timeouts_nest and simulate each verdict."""
    props = properties_of(system)
    if not props:
        return []
    findings: list[Finding] = []
    for prop in props:
        try:
            with _overrun(OVERRUN * settings.verify_timeout + 5.0):
                verdict = verify(system, [prop], timeout=settings.verify_timeout).verdicts[0]
        except Exception as exc:  # a verifier crash, or a search ignoring its timeout
            findings.append(Finding(prop.kind, "error", "verifier raised", False,
                                    f"{type(exc).__name__}: {exc}"))
            continue
        if verdict.status == "unknown":
            findings.append(Finding(prop.kind, "unknown", "", True, verdict.explanation))
            continue
        try:
            if isinstance(prop, P.Survives):
                findings += check_survives(system, prop, verdict, settings)
            elif isinstance(prop, P.Capacity):
                findings += check_capacity(system, prop, verdict, settings)
            elif isinstance(prop, P.Staleness):
                findings += check_staleness(system, verdict, settings)
            else:
                findings += check_timeouts(system, verdict, settings)
        except Exception as exc:  # an engine or replay crash is a finding, not a harness stop
            findings.append(Finding(prop.kind, verdict.status, "simulation raised", False,
                                    f"{type(exc).__name__}: {exc}"))
    return findings


__all__ = ["CONFIDENCE", "FAST", "KINDS", "THOROUGH", "Finding", "Settings", "check", "light",
           "settle_time", "wilson"]
