"""Hedged calls: several attempts of one call out at once, the first success wins.

gRPC's hedging policy (gRFC A6): the first attempt goes at once; while none has succeeded,
another goes every ``delay`` until ``max_attempts`` have been sent. A failed attempt does not
end the call while others are out or may still be sent: the next hedge goes at once, without
waiting for its delay (A6's non-fatal status). The first success wins and the call completes;
the attempts still out are cancelled: their responses are ignored, but the callee may still
be working on them (work for nobody). The call fails when every attempt it could send has
failed, or at its deadline. gRPC retry throttling applies to hedges: a hedge is sent only
while the caller instance's token count is above half its maximum; an open breaker holds
hedges back too (the first attempt is refused ``circuit open`` as an unhedged call is).

Each attempt is its own waiter (``HedgeAttempt``) so the callee's job answers that attempt; it
has its own per-try timer (the call's ``timeout``), capped by the call's deadline like the
attempts of ``CallRun``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from simpy.events import Timeout

from faultmesh.simulations.engine.jobs import FIRST, HEDGE
from faultmesh.simulations.engine.outliers import classify
from faultmesh.simulations.outcomes import (
    CIRCUIT_OPEN,
    DEADLINE_EXCEEDED,
    NO_INSTANCE,
    RETRIES_EXHAUSTED,
    TIMED_OUT,
)

if TYPE_CHECKING:
    from faultmesh.simulations.engine.calls import CallSite
    from faultmesh.simulations.engine.instances import Instance
    from faultmesh.simulations.engine.jobs import Job


class HedgeAttempt:
    """One attempt of a hedged call, waiting for its response (token 1)."""

    __slots__ = ("awaiting", "capped", "lost", "parent", "run", "sent_at", "target")

    def __init__(self, run: HedgeRun, target: Instance, sent_at: float, capped: bool) -> None:
        self.run = run
        self.parent = run.parent  # the job the call works for (traces read it)
        self.target = target
        self.sent_at = sent_at
        self.capped = capped  # its timer is the call's deadline, not its per-try timeout
        self.awaiting = 1  # 0 once settled or cancelled
        self.lost: str | None = None

    def respond(self, token: int, ok: bool, cause: str | None, root: str | None) -> None:
        if self.awaiting == token:
            self.awaiting = 0
            self.run.settled(self, ok, cause, root)

    def expire(self, token: int) -> None:
        self.awaiting = 0
        if self.capped:
            self.run.settled(self, False, DEADLINE_EXCEEDED, DEADLINE_EXCEEDED)
        else:
            self.run.settled(self, False, TIMED_OUT, self.lost or TIMED_OUT)

    def expire_capped(self, _event: object) -> None:
        if self.awaiting:
            self.expire(1)

    def lose(self, token: int, cause: str) -> None:
        if self.awaiting == token:
            self.lost = cause


class HedgeRun:
    """One hedged call in progress: the attempts out, how many were sent, each repetition."""

    __slots__ = ("caller", "cause", "done", "expires", "generation", "key", "out", "parent",
                 "repeats", "root", "round", "sent", "site", "tried")

    def __init__(self, site: CallSite, caller: Instance, parent: Job | None, key: int,
                 expires: float | None) -> None:
        self.site = site
        self.caller = caller
        self.generation = caller.generation
        self.parent = parent
        self.key = key
        self.expires = expires  # the call's overall deadline, absolute (None: none)
        self.repeats = site.repeat
        self.round = 0  # which repetition: a hedge timer of an earlier one is stale
        self.sent = 0
        self.out: list[HedgeAttempt] = []
        self.done = False
        self.cause: str | None = None  # the latest failed attempt's cause and root cause
        self.root: str | None = None
        self.tried: list[Instance] = []  # for retry_other_instance (hedges avoid tried hosts)

    def start(self) -> None:
        """Send the first attempt of a repetition."""
        site = self.site
        self.round += 1
        self.sent = 0
        self.done = False
        breakers = site.breakers
        if breakers is not None and not breakers[self.caller.index].allow(site.env.now):
            self.finish(False, CIRCUIT_OPEN, CIRCUIT_OPEN)
            return
        if self.expires is not None and site.env.now >= self.expires:
            self.finish(False, DEADLINE_EXCEEDED, DEADLINE_EXCEEDED)
            return
        self.send(FIRST)

    def hedge(self) -> None:
        """Send one more attempt if the policy, the throttle, the breaker and time allow."""
        site = self.site
        now = site.env.now
        index = self.caller.index
        if (self.done or self.sent >= site.hedge.max_attempts  # type: ignore[union-attr]
                or self.caller.generation != self.generation
                or (self.expires is not None and now >= self.expires)):
            return
        if site.throttle is not None and not site.throttle.allows(index):
            site.edge.throttled += 1
            return
        breakers = site.breakers
        if breakers is not None and not breakers[index].allow(now):
            return
        self.send(HEDGE)

    def send(self, kind: int) -> None:
        site = self.site
        env = site.env
        now = env.now
        index = self.caller.index
        self.sent += 1
        edge = site.edge
        edge.attempts += 1
        if kind == FIRST:
            edge.first_attempts += 1
        else:
            edge.hedges += 1
        hedge = site.hedge
        assert hedge is not None
        if self.sent < hedge.max_attempts:
            # The next hedge after the delay, unless something is sent before (then stale).
            Timeout(env, hedge.delay).callbacks.append(partial(self.timer, self.sent, self.round))
        view = site.view(self.caller)
        if not view:
            if site.breakers is not None:
                site.breakers[index].record(now, False, 0.0)
            if site.throttle is not None:
                site.throttle.record(index, False)
            self.failed(NO_INSTANCE, NO_INSTANCE)
            return
        target = site.pick(self, index, view, kind == FIRST)
        if site.active is not None:
            site.active[index][target] += 1
        if site.budget is not None:
            site.budget.active[index] += 1
        deadline = now + site.timeout
        expires = self.expires
        capped = expires is not None and expires < deadline
        attempt = HedgeAttempt(self, target, now, capped)
        self.out.append(attempt)
        if capped:
            deadline = expires  # type: ignore[assignment]
            Timeout(env, deadline - now).callbacks.append(attempt.expire_capped)
        else:
            site.deadlines.add(attempt, 1, now)
        site.transmit(attempt, 1, self.key, self.caller, target, deadline, kind)

    def timer(self, sent: int, round_: int, _event: object) -> None:
        """The hedge delay after the ``sent``-th attempt of repetition ``round_`` is over."""
        if round_ == self.round and sent == self.sent and not self.done:
            self.hedge()

    def _let_go(self, attempt: HedgeAttempt) -> None:
        """``attempt`` is no longer out: its caller-side counts go back."""
        site = self.site
        index = self.caller.index
        if site.active is not None:
            site.active[index][attempt.target] -= 1
        if site.budget is not None:
            site.budget.active[index] -= 1

    def settled(self, attempt: HedgeAttempt, ok: bool, cause: str | None,
                root: str | None) -> None:
        """``attempt`` got its response, or timed out."""
        site = self.site
        now = site.env.now
        index = self.caller.index
        self.out.remove(attempt)
        self._let_go(attempt)
        if site.throttle is not None:
            site.throttle.record(index, ok)
        if site.breakers is not None:
            site.breakers[index].record(now, ok, now - attempt.sent_at)
        if site.outliers is not None:
            site.outliers[index].record(attempt.target.name, now, classify(ok, cause))
        if ok:
            self.cancel()
            if self.repeats > 1:
                self.repeats -= 1
                self.start()
            else:
                self.finish(True, None, None)
            return
        if cause == DEADLINE_EXCEEDED:
            self.cancel()
            self.finish(False, cause, root)
            return
        self.failed(cause, root)  # type: ignore[arg-type]

    def failed(self, cause: str, root: str) -> None:
        """An attempt failed: hedge again at once, or fail once nothing is left out."""
        self.cause, self.root = cause, root
        self.hedge()
        if not self.out and not self.done:
            hedged = self.sent > 1
            self.finish(False, RETRIES_EXHAUSTED if hedged else cause, root)

    def cancel(self) -> None:
        """Forget the attempts still out: their responses will be ignored."""
        for attempt in self.out:
            attempt.awaiting = 0
            self._let_go(attempt)
        self.out.clear()

    def finish(self, ok: bool, cause: str | None, root: str | None) -> None:
        self.done = True
        if ok:
            self.site.edge.calls += 1
            if self.parent is not None:
                self.parent.call_done(True, None)
            return
        self.site.complete(self, False, cause, root)
