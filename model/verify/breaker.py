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

The model (one step = one event: a call asks ``allow``, an outcome is ``record``-ed, or nothing)

* time is abstracted to one flag per opening, *elapsed*: false when the breaker opens, and
  it may become true at any later step (time only moves forward), staying true until the next
  opening. This is exact for the breaker, which only ever compares "now" with "opened at +
  open_for"; the two kinds' boundaries (``>`` vs ``>=``) collapse into "elapsed", which (a)
  states in terms of.
* the rate kind's count window (a ring of the last ``window`` outcomes) is abstracted soundly
  to the counts it needs: calls ``n``, failures ``f`` and slow calls ``s`` in the window. When
  the ring is full, a new outcome evicts the oldest, whose failed/slow bits the counts do not
  know: the model lets it be any outcome consistent with the counts (a failure only if
  ``f > 0``, a success only if ``n - f > 0``; likewise for slow). Every behaviour of the real
  ring is a behaviour of the model; rates are compared exactly as the breaker does in floating
  point (precomputed per window size).
* the environment is free: calls and outcomes come in any order, outcomes even without a
  permitted call (the breaker cannot tell a late outcome from a probe's, and neither can the
  model). So the proofs hold for every interleaving, including misbehaving callers.

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
    ConsecutiveBreakerPolicy,
    RateBreakerPolicy,
    System,
)
from faultmesh.model.units import format_duration
from faultmesh.model.verify import checker
from faultmesh.model.verify.deadline import Deadline, out_of_time
from faultmesh.model.verify.sites import call_sites
from faultmesh.model.verify.verdict import Counterexample, Verdict

CLOSED, OPEN, HALF_OPEN = 0, 1, 2
STATE_NAMES = {CLOSED: "closed", OPEN: "open", HALF_OPEN: "half_open"}
ALLOW, RECORD, IDLE = 0, 1, 2
MAX_K = 4  # deepest induction tried before answering unknown

State = dict[str, z3.ExprRef]


def thresholds(rate: float, top: int) -> list[int]:
    """``t[n]``: the fewest bad calls out of ``n`` with ``bad / n >= rate`` in floating point,
    as the breaker computes it (``n + 1`` when none is enough); ``t[0]`` is unused."""
    out = [0]
    for n in range(1, top + 1):
        out.append(next((k for k in range(n + 1) if k / n >= rate), n + 1))
    return out


def _lookup(table: list[int], n: z3.ArithRef) -> z3.ArithRef:
    """``table[n]`` as a Z3 term (n in 1..len-1; any value outside)."""
    expr: z3.ArithRef = z3.IntVal(table[-1])
    for i in range(len(table) - 2, 0, -1):
        expr = z3.If(n == i, table[i], expr)
    return expr


class Machine:
    """A breaker policy as a transition system: variables, init, transition, invariants."""

    state_names: tuple[str, ...] = ()
    limit: int = 1  # permitted calls per half-open period

    def __init__(self) -> None:
        self.bound = 0  # B of claim (c), set by ``compute_bound``

    # Subclasses define these.
    def kind_init(self, s: State) -> list[z3.BoolRef]:
        raise NotImplementedError

    def step(self, s: State, i: State, t: State) -> list[z3.BoolRef]:
        raise NotImplementedError

    def structure(self, s: State) -> list[z3.BoolRef]:
        raise NotImplementedError

    def rank(self, s: State) -> z3.ArithRef:
        raise NotImplementedError

    # --- shared ------------------------------------------------------------------------------

    def state(self, k: int) -> State:
        s: State = {"st": z3.Int(f"st_{k}"), "el": z3.Bool(f"el_{k}"),
                    "probes": z3.Int(f"probes_{k}"), "rec": z3.Bool(f"rec_{k}"),
                    "cnt": z3.Int(f"cnt_{k}"), "bad_a": z3.Bool(f"bad_a_{k}")}
        for name in self.state_names:
            s[name] = z3.Int(f"{name}_{k}")
        return s

    def inputs(self, k: int) -> State:
        return {"ev": z3.Int(f"ev_{k}"), "tick": z3.Bool(f"tick_{k}"),
                "rec_in": z3.Bool(f"rec_in_{k}"), "fail": z3.Bool(f"fail_{k}"),
                "slow": z3.Bool(f"slow_{k}"), "ef": z3.Bool(f"ef_{k}"),
                "es": z3.Bool(f"es_{k}"), "allowed": z3.Bool(f"allowed_{k}")}

    def init(self, s: State) -> z3.BoolRef:
        return z3.And(s["st"] == CLOSED, z3.Not(s["el"]), s["probes"] == 0,
                      z3.Not(s["rec"]), s["cnt"] == 0, z3.Not(s["bad_a"]), *self.kind_init(s))

    def trans(self, s: State, i: State, t: State) -> z3.BoolRef:
        """One event; the common bookkeeping around the kind's own ``step``."""
        el_now = z3.Or(s["el"], i["tick"])
        rec_now = z3.Or(s["rec"], i["rec_in"])
        opening = z3.And(s["st"] != OPEN, t["st"] == OPEN)
        progress = z3.Or(i["allowed"], z3.And(i["ev"] == RECORD, s["st"] != OPEN))
        counted = z3.And(rec_now, progress, z3.Or(s["st"] != CLOSED, t["st"] != CLOSED))
        return z3.And(
            i["ev"] >= ALLOW, i["ev"] <= IDLE,
            z3.Implies(rec_now, z3.And(z3.Not(i["fail"]), z3.Not(i["slow"]))),
            z3.Implies(i["ev"] != ALLOW, z3.Not(i["allowed"])),
            t["el"] == z3.If(opening, False, el_now),
            t["rec"] == rec_now,
            t["cnt"] == s["cnt"] + z3.If(counted, 1, 0),
            t["bad_a"] == z3.Or(s["bad_a"], z3.And(i["allowed"], s["st"] != CLOSED,
                                                     z3.Not(el_now))),
            *self.step(s, i, t),
        )

    def properties(self, s: State) -> dict[str, z3.BoolRef]:
        return {
            "a": z3.Not(s["bad_a"]),
            "b": z3.Implies(s["st"] == HALF_OPEN, s["probes"] <= self.limit),
            "c": s["cnt"] <= self.bound,
        }

    def invariant(self, s: State) -> z3.BoolRef:
        return z3.And(*self.structure(s), s["cnt"] >= 0, z3.Implies(z3.Not(s["rec"]),
                                                                      s["cnt"] == 0),
                      z3.Implies(s["rec"], s["cnt"] + self.rank(s) <= self.bound))

    def compute_bound(self, deadline: Deadline) -> bool:
        """B = the largest rank over states meeting the structural invariants."""
        opt = z3.Optimize()
        opt.set("timeout", deadline.z3_ms())
        s = self.state(0)
        opt.add(*self.structure(s))
        handle = opt.maximize(self.rank(s))
        if opt.check() != z3.sat:
            return False
        self.bound = handle.value().as_long()
        return True


class RateMachine(Machine):
    """Resilience4j COUNT_BASED semantics (``simulations.breakers.RateCircuitBreaker``)."""

    state_names = ("n", "f", "s", "p")

    def __init__(self, policy: RateBreakerPolicy) -> None:
        super().__init__()
        self.policy = policy
        self.window = policy.window
        self.min_calls = min(policy.min_calls, policy.window)
        self.half_open = policy.half_open_calls
        self.half_min = min(policy.min_calls, policy.half_open_calls)
        self.limit = policy.half_open_calls
        self.slow = policy.slow_call_duration is not None
        top = max(self.window, self.half_open)
        self.thr = thresholds(policy.failure_rate, top)
        self.thr_slow = thresholds(policy.slow_call_rate, top)

    def over(self, f: z3.ArithRef, s: z3.ArithRef, n: z3.ArithRef) -> z3.BoolRef:
        """Would a window of ``n`` calls with ``f`` failures and ``s`` slow ones open?"""
        by_failures = f >= _lookup(self.thr, n)
        if not self.slow:
            return by_failures
        return z3.Or(by_failures, s >= _lookup(self.thr_slow, n))

    def kind_init(self, s: State) -> list[z3.BoolRef]:
        return [s["n"] == 0, s["f"] == 0, s["s"] == 0, s["p"] == 0]

    def step(self, s: State, i: State, t: State) -> list[z3.BoolRef]:
        st, n, f, sl, p = s["st"], s["n"], s["f"], s["s"], s["p"]
        el_now = z3.Or(s["el"], i["tick"])
        fail = z3.If(i["fail"], 1, 0)
        slow = z3.If(i["slow"], 1, 0) if self.slow else z3.IntVal(0)
        ef, es = z3.If(i["ef"], 1, 0), z3.If(i["es"], 1, 0)

        def same(*names: str) -> list[z3.BoolRef]:
            return [t[x] == s[x] for x in names]

        keep_all = z3.And(*same("st", "n", "f", "s", "p", "probes"))
        # allow
        to_half = z3.And(st == OPEN, el_now)
        allow = z3.If(
            st == CLOSED, z3.And(i["allowed"], keep_all),
            z3.If(st == OPEN,
                  z3.If(to_half,
                        z3.And(i["allowed"], t["st"] == HALF_OPEN, t["n"] == 0, t["f"] == 0,
                               t["s"] == 0, t["p"] == self.half_open - 1, t["probes"] == 1),
                        z3.And(z3.Not(i["allowed"]), keep_all)),
                  z3.If(p > 0,
                        z3.And(i["allowed"], t["p"] == p - 1, t["probes"] == s["probes"] + 1,
                               *same("st", "n", "f", "s")),
                        z3.And(z3.Not(i["allowed"]), keep_all))))
        # record, closed: the ring
        full = n == self.window
        n1 = z3.If(full, n, n + 1)
        f1 = f + fail - z3.If(full, ef, 0)
        s1 = sl + slow - z3.If(full, es, 0)
        evict_ok = z3.Implies(full, z3.And(z3.Implies(i["ef"], f >= 1),
                                           z3.Implies(z3.Not(i["ef"]), n - f >= 1),
                                           z3.Implies(i["es"], sl >= 1),
                                           z3.Implies(z3.Not(i["es"]), n - sl >= 1)))
        if not self.slow:
            evict_ok = z3.And(evict_ok, z3.Not(i["es"]))
        opens = z3.And(n1 >= self.min_calls, self.over(f1, s1, n1))
        closed_record = z3.And(evict_ok, t["n"] == n1, t["f"] == f1, t["s"] == s1,
                               t["st"] == z3.If(opens, OPEN, CLOSED), *same("p", "probes"))
        # record, half-open: the probes' own window
        n2, f2, s2 = n + 1, f + fail, sl + slow
        judged = n2 >= self.half_min
        reopens = z3.And(judged, self.over(f2, s2, n2))
        closes = z3.And(judged, z3.Not(reopens))
        half_record = z3.And(
            t["st"] == z3.If(reopens, OPEN, z3.If(closes, CLOSED, HALF_OPEN)),
            t["n"] == z3.If(closes, 0, n2), t["f"] == z3.If(closes, 0, f2),
            t["s"] == z3.If(closes, 0, s2), *same("p", "probes"))
        record = z3.If(st == CLOSED, closed_record,
                       z3.If(st == OPEN, keep_all, half_record))
        return [z3.If(i["ev"] == ALLOW, allow, z3.If(i["ev"] == RECORD, record, keep_all))]

    def structure(self, s: State) -> list[z3.BoolRef]:
        st, n, f, sl, p = s["st"], s["n"], s["f"], s["s"], s["p"]
        top = max(self.window, self.half_open)
        return [
            st >= CLOSED, st <= HALF_OPEN,
            n >= 0, f >= 0, sl >= 0, f <= n, sl <= n, n <= top, p >= 0,
            *([] if self.slow else [sl == 0]),
            z3.Implies(st == CLOSED, z3.And(
                n <= self.window,
                z3.Implies(n >= self.min_calls, z3.Not(self.over(f, sl, n))))),
            z3.Implies(st == HALF_OPEN, z3.And(
                s["el"], n < self.half_min, p + s["probes"] == self.half_open,
                s["probes"] >= 1)),
        ]

    def rank(self, s: State) -> z3.ArithRef:
        st, n, f, sl, p = s["st"], s["n"], s["f"], s["s"], s["p"]
        rank_open = self.half_open + self.half_min
        unstable = z3.And(n < self.min_calls, self.over(f, sl, z3.IntVal(self.min_calls)))
        half = p + (self.half_min - n) + z3.If(
            self.over(f, sl, z3.IntVal(self.half_min)), rank_open, 0)
        return z3.If(st == OPEN, rank_open,
                     z3.If(st == HALF_OPEN, half, z3.If(unstable, 1 + rank_open, 0)))


class ConsecutiveMachine(Machine):
    """pybreaker semantics (``simulations.breakers.ConsecutiveCircuitBreaker``)."""

    state_names = ("cf",)
    limit = 1

    def __init__(self, policy: ConsecutiveBreakerPolicy) -> None:
        super().__init__()
        self.policy = policy
        self.threshold = policy.consecutive_failures

    def kind_init(self, s: State) -> list[z3.BoolRef]:
        return [s["cf"] == 0]

    def step(self, s: State, i: State, t: State) -> list[z3.BoolRef]:
        st, cf = s["st"], s["cf"]
        el_now = z3.Or(s["el"], i["tick"])
        keep_all = z3.And(t["st"] == st, t["cf"] == cf, t["probes"] == s["probes"])
        allow = z3.If(
            st == CLOSED, z3.And(i["allowed"], keep_all),
            z3.If(z3.And(st == OPEN, el_now),
                  z3.And(i["allowed"], t["st"] == HALF_OPEN, t["cf"] == cf, t["probes"] == 1),
                  z3.And(z3.Not(i["allowed"]), keep_all)))
        cf1 = cf + 1
        closed_record = z3.If(
            i["fail"],
            z3.And(t["cf"] == cf1, t["st"] == z3.If(cf1 >= self.threshold, OPEN, CLOSED),
                   t["probes"] == s["probes"]),
            z3.And(t["cf"] == 0, t["st"] == CLOSED, t["probes"] == s["probes"]))
        half_record = z3.If(
            i["fail"], z3.And(t["st"] == OPEN, t["cf"] == cf, t["probes"] == s["probes"]),
            z3.And(t["st"] == CLOSED, t["cf"] == 0, t["probes"] == s["probes"]))
        record = z3.If(st == CLOSED, closed_record,
                       z3.If(st == OPEN, keep_all, half_record))
        return [z3.If(i["ev"] == ALLOW, allow, z3.If(i["ev"] == RECORD, record, keep_all))]

    def structure(self, s: State) -> list[z3.BoolRef]:
        st = s["st"]
        return [st >= CLOSED, st <= HALF_OPEN, s["cf"] >= 0,
                z3.Implies(st == CLOSED, s["cf"] < self.threshold),
                z3.Implies(st == HALF_OPEN, z3.And(s["el"], s["probes"] == 1))]

    def rank(self, s: State) -> z3.ArithRef:
        return z3.If(s["st"] == OPEN, 2, z3.If(s["st"] == HALF_OPEN, 1, 0))


def machine(policy: BreakerPolicy) -> Machine:
    if isinstance(policy, RateBreakerPolicy):
        return RateMachine(policy)
    return ConsecutiveMachine(policy)


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
