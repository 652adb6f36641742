"""``breaker``: every configured circuit breaker's state machine, proved safe and live.

For each distinct breaker policy in the System, the breaker is modelled as a transition system
in Z3 (the semantics of ``simulations.breakers``, see its module docstring and DESIGN.md) and
three claims are proved by k-induction -- base case by bounded model checking from the initial
state, inductive step from an arbitrary state -- so ``holds`` is a proof for every length of
run, not a bound:

(a) **no call passes an open breaker**: a call is only permitted while closed, or once
    ``open_for`` has elapsed since the breaker last opened;
(b) **bounded probing**: in one half-open period at most ``half_open_calls`` calls are permitted
    (rate kind; permits are not returned when outcomes arrive) or exactly one trial call
    (consecutive kind);
(c) **recovery closes it** (liveness stated as safety): once the callee has recovered -- every
    outcome from then on is a success, and not slow -- at most ``B`` *progress events* happen
    while the breaker is not closed, ``B`` a number computed per policy and stated in the
    verdict. A progress event is a permitted call or a recorded outcome that the breaker takes
    into account; calls rejected while open, and outcomes ignored while open, make no progress
    (a breaker nobody calls stays open forever, by design: the open -> half-open step is lazy).
    So a caller that keeps calling, and whose calls' outcomes come back, sees the breaker
    closed for good after at most ``B`` such events. (It may open once more on the way: a
    half-open period that had failures before the recovery, or a closed window whose failures
    only reach ``min_calls`` with the next successes.)

The transition systems and their abstraction (time as one *elapsed* flag, the count
window as counts) are in ``breaker_machines``.

Strengthening invariants used in the induction (each checked in the base case and preserved
by the step, so also proved): state ranges; in closed, a window that has reached ``min_calls``
is under both thresholds; in half-open, *elapsed* holds and permits left + probes made =
``half_open_calls``; and after recovery, progress events so far + ``rank(state)`` <= ``B``, where
``rank`` is the most progress events that can still happen before the breaker is closed for
good. ``B`` is the largest rank over states satisfying the other invariants (z3 Optimize).

A violated claim comes with a counterexample whose ``chain`` is the run that breaks it, one
event per step (``failure -> closed``, ``allow -> half_open``, ...), found by the base case or
a deeper bounded search.

Every event has a successor from every state meeting the invariants (checked with a
quantified query before the induction), so the induction cannot succeed by a model that
blocks the events that would break a claim. Unknown when k-induction has not closed by the
time the deadline passes (a deeper bounded search then looks for a real violation).
"""

from __future__ import annotations

from dataclasses import dataclass

import z3

from faultmesh.model import properties as P
from faultmesh.model.system import (
    BreakerPolicy,
    RateBreakerPolicy,
    System,
)
from faultmesh.model.units import format_duration
from faultmesh.model.verify import checker
from faultmesh.model.verify.breaker_machines import (
    ALLOW,
    IDLE,
    MAX_K,
    RECORD,
    STATE_NAMES,
    ConsecutiveMachine,
    Machine,
    RateMachine,
    State,
    machine,
    thresholds,
)
from faultmesh.model.verify.deadline import Deadline, out_of_time
from faultmesh.model.verify.sites import call_sites
from faultmesh.model.verify.verdict import Counterexample, Verdict


@dataclass(frozen=True)
class Proof:
    """The outcome for one policy: status, the bound B of (c), the k that closed, a trace."""

    status: str  # holds | violated | unknown
    bound: int = 0
    k: int = 0
    failed: str = ""  # which claim failed, for violated
    trace: tuple[str, ...] = ()
    why: str = ""  # for unknown: what was left open
    timed_out: bool = False  # unknown because the deadline ran out (not for a reason of its own)


def _solver(deadline: Deadline) -> z3.Solver:
    solver = z3.Solver()
    solver.set("timeout", deadline.z3_ms())
    return solver


def _trace(m: Machine, model: z3.ModelRef, states: list[State], inputs: list[State],
           upto: int) -> tuple[str, ...]:
    def val(e: z3.ExprRef) -> object:
        return model.eval(e, model_completion=True)

    events = []
    for k in range(upto):
        i = inputs[k]
        ev = val(i["ev"]).as_long()  # type: ignore[attr-defined]
        after = STATE_NAMES[val(states[k + 1]["st"]).as_long()]  # type: ignore[attr-defined]
        if ev == ALLOW:
            word = "allow" if z3.is_true(val(i["allowed"])) else "reject"
        elif ev == RECORD:
            word = "failure" if z3.is_true(val(i["fail"])) else "success"
        else:
            word = "wait"
        if z3.is_true(val(i["rec_in"])) and not z3.is_true(val(states[k]["rec"])):
            word = "recovered; " + word
        events.append(f"{word} -> {after}")
    return tuple(events)


def prove(policy: BreakerPolicy, deadline: Deadline) -> Proof:
    """k-induction over the breaker's transition system (base case + inductive step)."""
    m = machine(policy)
    if not m.compute_bound(deadline):
        return Proof("unknown", why="computing the recovery bound", timed_out=True)
    partial = _partial(m, deadline)
    if partial is not None:
        return partial
    states = [m.state(0)]
    inputs: list[State] = []
    for k in range(1, MAX_K + 1):
        if deadline.expired():
            return Proof("unknown", bound=m.bound, why=f"k-induction at k={k}", timed_out=True)
        states.append(m.state(k))
        inputs.append(m.inputs(k - 1))
        # Base: no run of k steps from the initial state breaks a claim or an invariant.
        base = _solver(deadline)
        base.add(m.init(states[0]))
        for j in range(k):
            base.add(m.trans(states[j], inputs[j], states[j + 1]))
        claims = [z3.And(*m.properties(s).values(), m.invariant(s)) for s in states]
        base.add(z3.Not(z3.And(*claims)))
        verdict = base.check()
        if verdict == z3.unknown:
            return _open(m, base, deadline, f"the base case at k={k}")
        if verdict == z3.sat:
            model = base.model()
            for j, s in enumerate(states):
                for name, holds in m.properties(s).items():
                    if not z3.is_true(model.eval(holds, model_completion=True)):
                        return Proof("violated", bound=m.bound, failed=name,
                                     trace=_trace(m, model, states, inputs, j))
            return Proof("unknown", bound=m.bound,
                         why="a strengthening invariant does not hold (model error)")
        # Step: k consecutive good states are followed by a good one.
        step = _solver(deadline)
        shifted = [m.state(100 + j) for j in range(k + 1)]
        moves = [m.inputs(100 + j) for j in range(k)]
        for j in range(k):
            step.add(*m.properties(shifted[j]).values())
            step.add(m.invariant(shifted[j]))
            step.add(m.trans(shifted[j], moves[j], shifted[j + 1]))
        step.add(z3.Not(z3.And(*m.properties(shifted[k]).values(), m.invariant(shifted[k]))))
        verdict = step.check()
        if verdict == z3.unsat:
            return Proof("holds", bound=m.bound, k=k)
        if verdict == z3.unknown:
            return _open(m, step, deadline, f"the inductive step at k={k}")
    return _search(m, deadline)


def _open(m: Machine, solver: z3.Solver, deadline: Deadline, where: str) -> Proof:
    """The proof when Z3 answered ``unknown`` in ``where``: out of time, or stuck on its own."""
    reason = solver.reason_unknown()
    if deadline.ran_out(reason):
        return Proof("unknown", bound=m.bound, why=where, timed_out=True)
    return Proof("unknown", bound=m.bound, why=f"{where}: the solver answered unknown ({reason})")


def _partial(m: Machine, deadline: Deadline) -> Proof | None:
    """None when every event has a successor from every state meeting the invariants; else
    the unknown proof saying why that is not established.

    Without this an invariant could be "preserved" by a model that simply blocks the events
    that would break it; with it, the induction covers every run of the real breaker.
    """
    s, i, t = m.state(0), m.inputs(0), m.state(1)
    solver = _solver(deadline)
    solver.add(m.invariant(s), *m.properties(s).values(), i["ev"] >= ALLOW, i["ev"] <= IDLE,
               z3.Implies(z3.Or(s["rec"], i["rec_in"]),
                          z3.And(z3.Not(i["fail"]), z3.Not(i["slow"]))))
    solver.add(z3.ForAll([i["ef"], i["es"], i["allowed"], *t.values()],
                         z3.Not(m.trans(s, i, t))))
    verdict = solver.check()
    if verdict == z3.unsat:
        return None
    if verdict == z3.sat:
        return Proof("unknown", bound=m.bound, why="an event has no successor (model error)")
    return _open(m, solver, deadline, "checking that every event has a successor")


def _search(m: Machine, deadline: Deadline) -> Proof:
    """After induction failed to close: look deeper for a real violation (bounded model
    checking, incrementally); none found in time means unknown, never holds."""
    if isinstance(m, RateMachine):
        depth = 4 * (m.min_calls + m.half_open) + 4 * m.bound + 16
    else:
        assert isinstance(m, ConsecutiveMachine)
        depth = 2 * m.threshold + 4 * m.bound + 16
    solver = _solver(deadline)
    states = [m.state(0)]
    inputs: list[State] = []
    solver.add(m.init(states[0]))
    for k in range(1, depth + 1):
        if deadline.expired():
            break
        states.append(m.state(k))
        inputs.append(m.inputs(k - 1))
        solver.add(m.trans(states[k - 1], inputs[k - 1], states[k]))
        solver.push()
        claims = m.properties(states[k])
        solver.add(z3.Not(z3.And(*claims.values())))
        solver.set("timeout", deadline.z3_ms())
        verdict = solver.check()
        if verdict == z3.sat:
            model = solver.model()
            failed = next(name for name, holds in claims.items()
                          if not z3.is_true(model.eval(holds, model_completion=True)))
            return Proof("violated", bound=m.bound, failed=failed,
                         trace=_trace(m, model, states, inputs, k))
        solver.pop()
        if verdict == z3.unknown:
            return _open(m, solver, deadline, f"the search for a violation at depth {k}")
    if deadline.expired():
        return Proof("unknown", bound=m.bound, why="the search for a violation",
                     timed_out=True)
    return Proof("unknown", bound=m.bound,
                 why=f"k-induction did not close by k={MAX_K} and no violation was found")


_PROVED: dict[BreakerPolicy, Proof] = {}


def proof(policy: BreakerPolicy, deadline: Deadline) -> Proof:
    """``prove`` with decided answers remembered (policies repeat across calls and specs)."""
    known = _PROVED.get(policy)
    if known is not None:
        return known
    result = prove(policy, deadline)
    if result.status != "unknown":
        _PROVED[policy] = result
    return result


def describe(policy: BreakerPolicy) -> str:
    if isinstance(policy, RateBreakerPolicy):
        slow = (f", slow > {format_duration(policy.slow_call_duration)} at "
                f"{policy.slow_call_rate:.0%}" if policy.slow_call_duration is not None else "")
        return (f"rate {policy.failure_rate:.0%} of {policy.window} (min {policy.min_calls}, "
                f"{policy.half_open_calls} half-open{slow})")
    return f"{policy.consecutive_failures} consecutive failures"


CLAIMS = {"a": "a call passed the open breaker before open_for elapsed",
          "b": "more half-open probes were permitted than allowed",
          "c": "the breaker stayed open or half-open too long after the callee recovered"}


@checker("breaker")
def check_breaker(system: System, prop: P.Property, deadline: Deadline) -> Verdict:
    if deadline.expired():
        return out_of_time(prop, deadline)
    edges: dict[BreakerPolicy, list[str]] = {}
    for site in call_sites(system, include_never=True):
        policy = site.call.circuit_breaker
        if policy is not None:
            edge = f"{site.caller_service}->{site.call.service}"
            if edge not in edges.setdefault(policy, []):
                edges[policy].append(edge)
    if not edges:
        return Verdict(prop.name, prop.kind, "holds", "no circuit breaker is configured")
    results: list[tuple[BreakerPolicy, Proof]] = []
    for policy in edges:
        result = proof(policy, deadline)
        results.append((policy, result))
        if result.status == "violated":
            return Verdict(
                prop.name, prop.kind, "violated",
                f"breaker {describe(policy)} on {', '.join(edges[policy])}: "
                f"{CLAIMS[result.failed]}",
                Counterexample(chain=result.trace, numbers={"bound": result.bound}))
    unknown = [(p, r) for p, r in results if r.status == "unknown"]
    if unknown:
        policy, result = unknown[0]
        if result.timed_out:
            return out_of_time(prop, deadline, f"{result.why} for breaker {describe(policy)}")
        return Verdict(prop.name, prop.kind, "unknown",
                       f"breaker {describe(policy)}: {result.why}")
    bounds = "; ".join(f"{describe(p)}: B={r.bound}" for p, r in results)
    count = len(results)
    return Verdict(
        prop.name, prop.kind, "holds",
        f"{count} breaker polic{'y' if count == 1 else 'ies'} proved by k-induction: no call "
        "passes while open, at most half_open_calls probes per half-open period, and after the "
        f"callee recovers at most B permitted calls and outcomes before closed for good "
        f"({bounds})")


__all__ = ["CLAIMS", "ConsecutiveMachine", "Machine", "Proof", "RateMachine", "check_breaker",
           "machine", "prove", "thresholds"]
