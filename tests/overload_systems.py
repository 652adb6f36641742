"""Generated systems for the ``overload_recovery`` differential test and bench.

``overload_spec(rng)`` draws a small retry-storm topology: ``front`` (the entry, never the
bottleneck) calls ``back`` directly or through ``mid``; each call has a per-try timeout a few
response times long at the drawn load, 0-4 retries or hedging, sometimes an overall deadline
and fan-out; callees sometimes carry a mitigation (retry budget, throttling, max_retries,
deadline propagation, a queue timeout, a bounded queue, adaptive LIFO) and more replicas. The
rate puts ``back`` at a nominal utilization between 20 % and 80 %, so both verdicts are common.

``trial(system, verdict, seed)`` is one differential check: for ``holds``, a latency trigger of
three per-try timeouts on the service with the highest storm utilization, then the entry's
availability once the fluid drain time (plus ``MARGIN``) has passed must be within
``TOLERANCE`` of its fault-free level (the same seed without the trigger, same window); for
``violated``, the replay of the counterexample's trigger must show the entry down after it,
judged once the trigger's backlog would have drained three times over without a storm
(``replay.agrees``); ``unknown`` (the proof cannot decide) is counted, not simulated.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from faultmesh.model.distributions import Constant
from faultmesh.model.faults import LatencyFault, Scenario, Target
from faultmesh.model.system import System
from faultmesh.model.verify import Verdict
from faultmesh.model.verify.overload import analyse

TRIGGER_AT = 10.0
TRIGGER_FOR = 5.0
MARGIN = 10.0  # seconds past the fluid drain time before availability is measured
WINDOW = 15.0  # seconds measured
TOLERANCE = 0.05  # availability after may be this much below its level before the trigger
MAX_DRAIN = 60.0


def _ms(x: float) -> str:
    return f"{max(1, round(x * 1000))}ms"


def overload_spec(rng: random.Random, index: int = 0) -> dict[str, Any]:
    utilization = rng.uniform(0.2, 0.8)
    back_time = rng.uniform(0.005, 0.02)
    back_workers = rng.randint(1, 4)
    back_replicas = rng.choice([1, 1, 2])
    exponential = rng.random() < 0.7
    services: dict[str, Any] = {
        "back": {"workers": back_workers, "replicas": back_replicas, "endpoints": {"Get": {
            "service_time": {"exponential": _ms(back_time)} if exponential
            else _ms(back_time)}}},
    }
    repeat = 1

    def call(target: str, callee_time: float) -> dict[str, Any]:
        nonlocal repeat
        # A few mean response times of an M/M/1 at the drawn utilization: attempts seldom time
        # out at the nominal load, so its availability is a stable level to come back to.
        timeout = callee_time * rng.uniform(4, 10) / (1 - utilization)
        out: dict[str, Any] = {"call": target, "timeout": _ms(timeout)}
        if rng.random() < 0.1:
            out["hedge"] = {"delay": _ms(timeout * rng.uniform(0.3, 0.8)),
                            "max_attempts": rng.randint(2, 3)}
        else:
            out["retries"] = rng.randint(0, 4)
        if rng.random() < 0.1:
            out["deadline"] = _ms(timeout * rng.uniform(1.2, 3.5))
        if rng.random() < 0.1:
            out["repeat"] = 2
            repeat *= 2
        return out

    if rng.random() < 0.4:
        mid_time = rng.uniform(0.001, 0.004)
        services["mid"] = {"workers": rng.randint(4, 16), "endpoints": {"Get": {
            "service_time": {"exponential": _ms(mid_time)},
            "calls": [call("back.Get", back_time)]}}}
        first = call("mid.Get", mid_time + back_time)
    else:
        first = call("back.Get", back_time)
    services["front"] = {"workers": 256, "endpoints": {"Get": {"service_time": "1ms",
                                                              "calls": [first]}}}
    for name in [n for n in services if n != "front"]:
        service = services[name]
        roll = rng.random()
        if roll < 0.12:
            service["retry_budget"] = {"percent": f"{rng.choice([10, 20, 50])}%",
                                       "min_concurrency": rng.randint(1, 5)}
        elif roll < 0.2:
            service["retry_throttling"] = {"max_tokens": 10, "token_ratio": 0.1}
        elif roll < 0.28:
            service["max_retries"] = rng.randint(1, 5)
        elif roll < 0.34:
            service["propagate_deadline"] = True
        elif roll < 0.4:
            service["queue_timeout"] = _ms(back_time * rng.uniform(0.5, 3))
        elif roll < 0.46:
            service["queue"] = rng.randint(2, 40)
        elif roll < 0.5:
            service["queue_discipline"] = "adaptive_lifo"
    rate = utilization * back_replicas * back_workers / back_time / repeat
    return {"system": f"gen{index}", "services": services,
            "workload": [{"entry": "front.Get", "rate": f"{rate:.1f}/s"}]}


@dataclass(frozen=True)
class Trial:
    """One system's verdict and what the simulation showed."""

    status: str
    agrees: bool
    detail: str


def trial(system: System, verdict: Verdict, seed: int = 0, others: bool = False) -> Trial:
    """``others``: a ``violated`` replay also runs the surge trigger (down) and the repaired
    system under the slowdown (up again), as ``verify --replay`` does."""
    from faultmesh.simulations.engine.simulation import simulate
    from faultmesh.simulations.replay import replay, window_availability

    if verdict.status == "unknown":
        return Trial("unknown", True, verdict.explanation)
    if verdict.status == "violated":
        result = replay(system, verdict, at=5.0, after=WINDOW, seed=seed, others=others)
        shown = ", ".join(f"{e.entry} {e.availability}" for e in result.entries)
        for what, _, entries in result.others:
            shown += f"; {what}: " + ", ".join(f"{e.entry} {e.availability}" for e in entries)
        return Trial("violated", result.agrees, f"after the trigger: {shown}")
    analysis = analyse(system)
    loaded = [s for s in analysis.services.values() if s.name != "front" and s.capacity]
    target = max(loaded, key=lambda s: s.storm_demand / s.capacity)
    timeouts = [f.site.call.timeout for f in analysis.storm.flows
                if f.site.call.service == target.name]
    add = 3 * max(timeouts)
    # The fluid drain: what arrived during the trigger (in transit, then at once) and any
    # excess of the storm over capacity, served at the spare capacity of the storm state.
    rate, cap = target.storm_rate, target.capacity_rate
    backlog = rate * add + max(0.0, rate - cap) * TRIGGER_FOR
    drain = min(MAX_DRAIN, backlog / (cap - rate)) if cap > rate else MAX_DRAIN
    start = TRIGGER_AT + TRIGGER_FOR + add + drain + MARGIN
    fault = LatencyFault(at=TRIGGER_AT, duration=TRIGGER_FOR,
                         target=Target("service", target.name), add=Constant(add))
    run = simulate(system, Scenario("trigger", (fault,), start + WINDOW, 0.0), seed=seed)
    # The fault-free level: the same seed without the trigger, over the same window (a system
    # that sheds or times out some requests nominally has a level below 100 % that wanders).
    plain = simulate(system, Scenario("plain", (), start + WINDOW, 0.0), seed=seed)
    level = window_availability(plain, "front.Get", start, start + WINDOW)
    after = window_availability(run, "front.Get", start, start + WINDOW)
    ok = level is None or (after is not None and after >= level - TOLERANCE)
    return Trial("holds", ok, f"{target.name} +{add * 1000:.0f}ms: availability {after} "
                              f"{drain:.1f}s + {MARGIN:g}s after the drain, {level} without "
                              f"the trigger")


__all__ = ["MARGIN", "TOLERANCE", "Trial", "overload_spec", "trial"]
