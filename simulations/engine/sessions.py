"""Closed workloads: users who each send one request at a time, with think times between.

A ``Sessions`` item has ``users`` users; each waits a think time, sends the first of its
``steps`` (an entry endpoint), waits for that request to end (served, failed or timed out),
thinks again, sends the next step, and after the last step starts over. So at most ``users``
requests are out at once, and the rate falls as responses slow down: the closed-loop behaviour
of a load generator with a fixed number of virtual users (wrk2's connections, Locust's users).

Each step's requests go through a ``SessionStep``, an ``Arrivals`` whose requests are sent by
users instead of a timer: routing, deadlines, statistics and the no-lost-requests ledger are the
open workload's own.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import Any

import simpy
from simpy.events import Timeout

from faultmesh.model.system import Sessions, Workload
from faultmesh.simulations.balancers import make_balancer
from faultmesh.simulations.engine.workload import Arrivals, EntryRequest


class SessionStep(Arrivals):
    """The requests of one session step: sent by users, each user told when its request ends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting: dict[int, User] = {}  # open request id -> the user waiting for it
        self.sending: User | None = None

    def start(self) -> None:
        """Users send the requests: no arrival timer."""

    def send(self, user: User) -> None:
        self.sending = user
        opened = len(self.open)
        self._request()
        self.sending = None
        if len(self.open) > opened:  # still out (not ended at once for want of an instance)
            self.waiting[next(reversed(self.open))] = user

    def end(self, request: EntryRequest, ok: bool, cause: str | None, root: str | None) -> None:
        super().end(request, ok, cause, root)
        user = self.waiting.pop(request.ident, None) or self.sending
        if user is not None:
            user.done()


class User:
    """One user of a session: think, send the next step, wait for it, and again."""

    __slots__ = ("env", "index", "steps", "think")

    def __init__(self, env: simpy.Environment, steps: list[SessionStep],
                 think: Callable[[], float]) -> None:
        self.env = env
        self.steps = steps
        self.think = think
        self.index = 0

    def start(self) -> None:
        Timeout(self.env, self.think()).callbacks.append(self._send)

    def _send(self, _event: object) -> None:
        step = self.steps[self.index]
        self.index = (self.index + 1) % len(self.steps)
        step.send(self)

    def done(self) -> None:
        """The request ended (any outcome): think, then the next step."""
        self.start()


class SessionGroup:
    """The users of one ``Sessions`` item, over the session steps of its entries."""

    def __init__(self, env: simpy.Environment, sessions: Sessions,
                 steps: dict[str, SessionStep], rng: random.Random) -> None:
        think = sessions.think.sampler(rng)
        order = [steps[entry] for entry in sessions.steps]
        self.users = [User(env, order, think) for _ in range(sessions.users)]

    def start(self) -> None:
        for user in self.users:
            user.start()


def build_sessions(sim: Any, ids: Iterator[int]) -> list[SessionGroup]:
    """The users of every ``Sessions`` item of ``sim.system``, their steps appended to
    ``sim.arrivals`` (so the ledger and monitors see them), routed as the open workload is."""
    groups = []
    for k, sessions in enumerate(sim.system.sessions):
        steps: dict[str, SessionStep] = {}
        for entry in dict.fromkeys(sessions.steps):
            service, _, endpoint = entry.partition(".")
            item = Workload(service, endpoint, 0.0, "constant", sessions.timeout, sessions.source)
            policy = sim.system.services[service].load_balancer
            # The ingress is one caller: least request counts its own requests out.
            active = Counter[Any]() if policy.kind == "least_request" else None
            balancer = make_balancer(policy, sim.streams(f"sessions/{k}/{entry}/ingress"),
                                     attrgetter("in_flight") if active is None
                                     else active.__getitem__)
            steps[entry] = SessionStep(
                sim.env, item, sim.services[service].endpoints[endpoint], sim.discovery.live,
                balancer, sim.entries[entry], sim.streams(f"sessions/{k}/{entry}"), ids,
                None if item.timeout is None else sim._deadlines(item.timeout), sim.trace,
                active=active)
            sim.arrivals.append(steps[entry])
        groups.append(SessionGroup(sim.env, sessions, steps, sim.streams(f"sessions/{k}/think")))
    return groups


__all__ = ["SessionGroup", "SessionStep", "User", "build_sessions"]
