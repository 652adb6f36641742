"""The fluid model behind ``overload_recovery``: each service's load in the retry storm.

Rates, not requests. Two states of the same system are computed, over the endpoint call graph
in topological order (callers first; a cyclic component is iterated to its fixed point):

* **nominal**: the workload at its peak rate (``Workload.peak_rate``), each call made once
  (``probability x repeat``), as ``load`` computes it;
* **storm**: every attempt along every path times out, so every call makes all the attempts its
  policies allow, and each attempt costs the callee its service time (the caller gave up, the
  callee serves it anyway: orphaned work).

Attempts per call in the storm (``attempts``): ``retries + 1``, or ``hedge.max_attempts`` for a
hedged call; at most the attempts that *start* within the call's overall ``deadline`` (attempt
i starts after i-1 per-try timeouts and the shortest backoffs: full jitter can draw 0); with
gRPC retry throttling on the callee a retried call makes at most ``1 + token_ratio`` (the
token count only stays above ``max_tokens / 2`` while failures are at most ``token_ratio`` x
successes, so over any long run retries are at most ``token_ratio`` per call; in the full
storm nothing succeeds and they stop altogether). Hedges are not capped by throttling: a hedge
that loses the race is cancelled, not failed, so when every attempt is slower than the hedge
delay yet within its timeout all ``max_attempts`` go out with the token count full (that
state, not the timeout storm, is a hedged call's worst).

Caps on the retry *rate* from caller service a to callee b (Little's law over each caller
instance, with every attempt lasting the per-try timeout ``t``, as it does in the storm; none
when an overall deadline or deadline propagation can cut an attempt shorter):

* Envoy's retry budget on b: active retries stay below ``max(min_concurrency, percent x active
  requests)`` <= ``m + p x active``; active retries = ``r x t``, active requests = ``(f + r) x t``
  per instance, so ``r <= (m / t + p f) / (1 - p)``, summed over a's replicas;
* Envoy's ``max_retries`` on b: ``r x t <= max_retries`` per caller instance.

A caller only calls for the requests it executes: an endpoint's executed rate is at most its
arrival rate and at most what its service's workers can run (``replicas x servers / mean
service time``). Every approximation here errs upward (sums of per-endpoint maxima, the
shortest timeout of a caller's sites, caps from an upper bound on first attempts), so the
storm load is an over-estimate: what ``holds`` needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from faultmesh.model.graph import strongly_connected
from faultmesh.model.system import Call, Group, Service, System
from faultmesh.model.verify.sites import CallSite, call_sites

INF = math.inf
CYCLE_ROUNDS = 400  # a cyclic component still moving after this many rounds is unbounded
CAP_PASSES = 3  # rate caps recomputed from the previous pass's (over-estimated) first attempts


def servers(service: Service) -> int:
    """Requests one instance can serve at once: its workers, fewer under a concurrency limit."""
    return service.workers if service.concurrency is None else min(service.workers,
                                                                    service.concurrency)


def min_backoff(call: Call, retry: int) -> float:
    """The shortest delay before retry ``retry`` (1-based): full jitter can draw 0."""
    delay = call.backoff.max_delay(retry)
    if call.backoff.jitter == "full":
        return 0.0
    if call.backoff.jitter == "equal":
        return delay / 2
    return delay


def _attempts_started(call: Call, backoff: Callable[[Call, int], float]) -> tuple[int, str]:
    """Attempts of one call that start within its deadline when every attempt times out,
    with ``backoff(call, retry)`` the delay assumed before each retry; and what bounds them."""
    if call.hedge is not None:
        k, why = call.hedge.max_attempts, f"{call.hedge.max_attempts} hedged attempts"
        starts = [i * call.hedge.delay for i in range(k)]
    else:
        k, why = call.retries + 1, f"{call.retries} retries"
        starts, at = [], 0.0
        for i in range(k):
            starts.append(at)
            at += call.timeout + backoff(call, i + 1)
    if call.deadline is not None:
        fit = sum(1 for s in starts if s < call.deadline)
        if fit < k:
            k, why = max(1, fit), f"{max(1, fit)} attempts within the {call.deadline:g}s deadline"
    return k, why


def attempts(call: Call, callee: Service) -> tuple[float, str]:
    """Attempts one call makes when every attempt times out, and what bounds them (the
    shortest backoffs: the most attempts that fit in the deadline)."""
    k, why = _attempts_started(call, min_backoff)
    value = float(k)
    # Throttling counts failed attempts; a hedge that loses the race is cancelled, not failed.
    # When every attempt is slower than the hedge delay but none times out, all hedges go out
    # and the token count stays full: throttling bounds retries only.
    if callee.retry_throttling is not None and k > 1 and call.hedge is None:
        bound = 1.0 + callee.retry_throttling.token_ratio
        if bound < value:
            value, why = bound, "gRPC retry throttling"
    return value, why


def attempts_at_least(call: Call, callee: Service) -> tuple[float, str]:
    """Attempts one call certainly makes when every attempt times out (the lower bound
    ``violated`` needs): the attempts that start within the deadline even with the longest
    backoffs, and one attempt under gRPC throttling (nothing succeeds in the storm, the token
    count falls below half and retries and hedges stop)."""
    k, why = _attempts_started(call, lambda c, retry: c.backoff.max_delay(retry))
    if callee.retry_throttling is not None and k > 1:
        return 1.0, "gRPC retry throttling"
    return float(k), why


def made_in_storm(system: System) -> set[tuple[str, int, int | None]]:
    """The call sites (caller, step, member) certainly made when every call fails: a request
    stops at its first required call that fails, so only the sites up to the first step that
    holds a required synchronous call (that step's members included, and a fallback) are
    made; later steps, and later calls of a sequential group, are not. A repeated call makes
    its later repetitions only after a success: in the storm, one."""
    made: set[tuple[str, int, int | None]] = set()
    blocked: dict[str, int] = {}  # caller -> the step after which nothing more is made
    for site in call_sites(system):
        stop = blocked.get(site.caller)
        if stop is not None and site.step > stop:
            continue
        step = system.endpoint(site.caller).steps[site.step]
        if isinstance(step, Group) and not step.parallel and stop is not None:
            continue  # a later member of a sequential group, after a required one
        made.add((site.caller, site.step, site.member))
        if site.call.required and stop is None:
            blocked[site.caller] = site.step
    return made


def mean_backoff(call: Call, retry: int) -> float:
    """The mean delay before retry ``retry``: full jitter draws uniformly below the step,
    equal jitter in its upper half."""
    delay = call.backoff.max_delay(retry)
    if call.backoff.jitter == "full":
        return delay / 2
    if call.backoff.jitter == "equal":
        return 0.75 * delay
    return delay


def hold_time(system: System, endpoint: str) -> float:
    """An upper bound on the mean time one execution of ``endpoint`` holds a worker in the
    storm (what Little's law divides its workers by): its service time plus every synchronous
    call's attempts to their timeouts with their mean backoffs (cut at the call's deadline),
    summed even over parallel calls."""
    from faultmesh.model.verify.sites import call_sites as sites

    total = system.endpoint(endpoint).service_time.mean
    for site in sites(system):
        call = site.call
        if site.caller != endpoint or call.asynchronous:
            continue
        if call.hedge is not None:
            worst = (call.hedge.max_attempts - 1) * call.hedge.delay + call.timeout
        else:
            worst = call.attempts * call.timeout + sum(mean_backoff(call, i)
                                                       for i in range(1, call.attempts))
        worst = worst if call.deadline is None else min(worst, call.deadline)
        total += call.probability * call.repeat * worst
    return total


@dataclass
class Flow:
    """One call site's traffic in a state: first attempts/s and attempts per call."""

    site: CallSite
    first: float
    factor: float
    why: str
    allowed: float = 0.0  # retries or hedges per second after the pair caps

    @property
    def total(self) -> float:
        return self.first + self.allowed


@dataclass
class State:
    """Rates of one state (nominal or storm) of the whole system."""

    arrivals: dict[str, float]  # endpoint -> attempts/s arriving
    executed: dict[str, float]  # endpoint -> requests/s it executes (and calls for)
    flows: list[Flow] = field(default_factory=list)
    unbounded: set[str] = field(default_factory=set)

    def into(self, endpoint: str) -> list[Flow]:
        return [f for f in self.flows if f.site.callee == endpoint]


def _pair(site: CallSite) -> tuple[str, str]:
    return site.caller_service, site.call.service


def retry_caps(system: System, flows: Iterable[Flow],
               lower: bool = False) -> dict[tuple[str, str], float]:
    """Retries/s allowed from caller service to callee service by budgets and max_retries.

    ``lower``: the retry rate the caps certainly allow in the storm (the fluid equilibrium
    with every attempt lasting its full per-try timeout: ``r x t <= max(m, p x (f + r) x t)``,
    so ``r = min(wanted, max(m / t, p f / (1 - p)))``; deadlines can only shorten attempts,
    which lets more retries through), for ``violated``."""
    first: dict[tuple[str, str], float] = {}
    timeout: dict[tuple[str, str], float] = {}
    for f in flows:
        if f.site.call.hedge is not None or f.site.call.retries == 0:
            continue
        key = _pair(f.site)
        first[key] = first.get(key, 0.0) + f.first
        # Little's law needs the shortest an attempt can last. A call's overall deadline, or
        # a caller that propagates its own, can cut a retry to almost nothing, and a budget
        # then frees its place at once: no rate cap from it (the per-call count still holds).
        short = f.site.call.deadline is not None or \
            system.services[f.site.caller_service].propagate_deadline
        if lower:
            timeout[key] = max(timeout.get(key, 0.0), f.site.call.timeout)
        else:
            timeout[key] = 0.0 if short else min(timeout.get(key, INF), f.site.call.timeout)
    caps: dict[tuple[str, str], float] = {}
    for key, f1 in first.items():
        caller, callee = system.services[key[0]], system.services[key[1]]
        t = timeout[key]
        cap = INF
        if t > 0:
            if callee.retry_budget is not None and callee.retry_budget.percent < 100:
                p = callee.retry_budget.percent / 100
                m = callee.retry_budget.min_concurrency * caller.replicas
                cap = min(cap, max(m / t, p * f1 / (1 - p)) if lower
                          else (m / t + p * f1) / (1 - p))
            if callee.max_retries is not None:
                cap = min(cap, callee.max_retries * caller.replicas / t)
        caps[key] = cap
    return caps


def propagate(system: System, *, storm: bool, caps: dict[tuple[str, str], float] | None = None,
              executed_cap: bool | None = None, lower: bool = False) -> State:
    """Rates of every endpoint: nominal (``storm=False``) or in the storm, under ``caps``;
    ``lower``: the storm's lower bound (``attempts_at_least``, a worker held for ``hold_time``)."""
    use_cap = storm if executed_cap is None else executed_cap
    caps = caps or {}
    names = [f"{s}.{e}" for s, svc in system.services.items() for e in svc.endpoints]
    index = {n: i for i, n in enumerate(names)}
    sites = list(call_sites(system))
    out: list[list[CallSite]] = [[] for _ in names]
    for site in sites:
        out[index[site.caller]].append(site)
    inflow = dict.fromkeys(names, 0.0)
    for w in system.workload:
        inflow[w.entry] += w.peak_rate
    limit: dict[str, float] = {}
    for name in names:
        service = system.services[name.partition(".")[0]]
        mean = hold_time(system, name) if lower else system.endpoint(name).service_time.mean
        limit[name] = service.replicas * servers(service) / mean if (use_cap and mean > 0) \
            else INF
    count = attempts_at_least if lower else attempts
    made = made_in_storm(system) if lower else None
    factors = {id(site): (count(site.call, system.services[site.call.service])
                          if storm else (1.0, "one attempt")) for site in sites}
    state = State(dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0))
    received: dict[str, list[Flow]] = {n: [] for n in names}

    def arrive(v: str) -> float:
        total = inflow[v]
        by_pair: dict[tuple[str, str], list[Flow]] = {}
        for f in received[v]:
            total += f.first
            if f.site.call.hedge is None:
                by_pair.setdefault(_pair(f.site), []).append(f)
            else:
                f.allowed = f.first * (f.factor - 1)
                total += f.allowed
        for key, group in by_pair.items():
            wanted = sum(f.first * (f.factor - 1) for f in group)
            allowed = min(wanted, caps.get(key, INF))
            for f in group:
                f.allowed = f.first * (f.factor - 1) * (allowed / wanted if wanted else 0.0)
            total += allowed
        return total

    def per_call(site: CallSite) -> float:
        """Calls of ``site`` per execution of its caller (in the storm's lower bound, one
        repetition, and none for a site a failed call before it stops)."""
        if made is None:
            return site.call.probability * site.call.repeat
        if (site.caller, site.step, site.member) not in made:
            return 0.0
        return site.call.probability

    def emit(u: str, rate: float) -> None:
        for site in out[index[u]]:
            k, why = factors[id(site)]
            flow = Flow(site, rate * per_call(site), k, why)
            received[site.callee].append(flow)
            state.flows.append(flow)

    succ = [[index[s.callee] for s in out[i]] for i in range(len(names))]
    for component in reversed(strongly_connected(succ)):
        members = [names[i] for i in component]
        cyclic = len(component) > 1 or component[0] in succ[component[0]]
        if not cyclic:
            v = members[0]
            state.arrivals[v] = arrive(v)
            state.executed[v] = min(state.arrivals[v], limit[v])
            emit(v, state.executed[v])
            continue
        inside = set(members)
        current = dict.fromkeys(members, 0.0)
        outside = {v: list(received[v]) for v in members}
        converged = False
        for _ in range(CYCLE_ROUNDS):
            inner: dict[str, list[Flow]] = {v: [] for v in members}
            for u in members:
                for site in out[index[u]]:
                    if site.callee in inside:
                        k, why = factors[id(site)]
                        inner[site.callee].append(Flow(site, current[u] * per_call(site), k, why))
            nxt = {}
            for v in members:
                received[v] = outside[v] + inner[v]
                nxt[v] = min(arrive(v), limit[v])
            delta = max(abs(nxt[v] - current[v]) for v in members)
            current = nxt
            if delta <= 1e-12 * max(1.0, max(current.values())):
                converged = True
                break
        for v in members:
            state.arrivals[v] = arrive(v) * (1 + 1e-9)  # the iteration approaches from below
            state.executed[v] = min(state.arrivals[v], limit[v])
            state.flows.extend(f for f in received[v] if f.site.caller in inside)
            if not converged:
                state.unbounded.add(v)
        for u in members:
            for site in out[index[u]]:
                if site.callee not in inside:
                    k, why = factors[id(site)]
                    flow = Flow(site, state.executed[u] * per_call(site), k, why)
                    received[site.callee].append(flow)
                    state.flows.append(flow)
    return state


def storm_state(system: System) -> State:
    """The storm, its retry-rate caps computed from an over-estimate of first attempts."""
    state = propagate(system, storm=True)
    for _ in range(CAP_PASSES):
        state = propagate(system, storm=True, caps=retry_caps(system, state.flows))
    return state


def storm_floor(system: System) -> State:
    """The storm's lower bound: what every service certainly receives once every attempt
    times out (fewest attempts, tightest caps, callers slowed by their own calls)."""
    state = propagate(system, storm=True, lower=True)
    for _ in range(CAP_PASSES):
        state = propagate(system, storm=True, lower=True,
                          caps=retry_caps(system, state.flows, lower=True))
    return state


def nominal_state(system: System) -> State:
    return propagate(system, storm=False, executed_cap=False)


def service_sums(system: System, state: State,
                 rate: Callable[[State, str], float] | None = None) -> dict[str, tuple[float,
                                                                                       float]]:
    """Per service: (requests/s, busy workers needed) from the state's arrivals."""
    out: dict[str, tuple[float, float]] = {}
    for name, service in system.services.items():
        total = demand = 0.0
        for ep_name, endpoint in service.endpoints.items():
            target = f"{name}.{ep_name}"
            r = state.arrivals.get(target, 0.0) if rate is None else rate(state, target)
            total += r
            demand += r * endpoint.service_time.mean
        out[name] = (total, demand)
    return out


__all__ = ["Flow", "State", "attempts", "attempts_at_least", "hold_time", "made_in_storm",
           "mean_backoff", "min_backoff", "nominal_state", "propagate", "retry_caps", "servers",
           "service_sums", "storm_floor", "storm_state"]
