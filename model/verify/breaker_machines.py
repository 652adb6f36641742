"""Circuit breaker policies as Z3 transition systems, for the ``breaker`` checker.

``machine(policy)`` gives the transition system of a breaker policy with the semantics of
``simulations.breakers`` (see its module docstring and DESIGN.md): variables, initial state,
one-step transition and the strengthening invariants that ``breaker`` proves by k-induction.

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
"""

from __future__ import annotations

import z3

from faultmesh.model.system import BreakerPolicy, ConsecutiveBreakerPolicy, RateBreakerPolicy
from faultmesh.model.verify.deadline import Deadline

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
