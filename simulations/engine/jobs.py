"""Jobs: one request being handled by an instance, and the endpoints they run.

A job waits in its instance's queue for a worker, holds it for the endpoint's service time,
releases it, then runs the endpoint's steps in order: a call, or a parallel group of calls
joined when all have finished. Asynchronous calls are fired and not waited for; a call with a
``probability`` below 1 is made only that often. The first step that fails (a non-optional call
failing after its retries) fails the job with ``dependency failed``; a job whose steps all
succeed succeeds. Either way it ends at its instance, which sends the response.

An ``EndpointRuntime`` is an endpoint compiled for the run: its service-time sampler and its
steps, each a ``CallSite`` (``simulations.calls``) or a tuple of them for a parallel group.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from faultmesh.model.system import Call, Fallback, Group, OneOf, Step
from faultmesh.simulations.outcomes import DEPENDENCY_FAILED

# What kind of attempt a job is, for the share of a callee's load that retries and hedges make.
FIRST = 0
RETRY = 1
HEDGE = 2

if TYPE_CHECKING:
    from faultmesh.simulations.engine.calls import CallSite
    from faultmesh.simulations.engine.instances import Instance, Waiter

class OneOfRuntime:
    """A ``one_of`` step: one call site per request, drawn by weight."""

    __slots__ = ("bounds", "rng", "sites")

    def __init__(self, sites: tuple[CallSite, ...], weights: tuple[float, ...],
                 rng: random.Random) -> None:
        self.sites = sites
        self.bounds = list(itertools.accumulate(weights))
        self.rng = rng

    def pick(self) -> CallSite:
        index = bisect.bisect_right(self.bounds, self.rng.random() * self.bounds[-1])
        return self.sites[min(index, len(self.sites) - 1)]


class GroupStart:
    """Opens a group: with ``probability`` the next ``length`` steps run, else all skipped."""

    __slots__ = ("length", "probability", "rng")

    def __init__(self, probability: float, length: int, rng: random.Random) -> None:
        self.probability = probability
        self.length = length
        self.rng = rng


class FallbackRuntime:
    """A call with a fallback: ``fallback`` runs when ``primary`` fails."""

    __slots__ = ("fallback", "primary")

    def __init__(self, primary: CallSite, fallback: CallSite) -> None:
        self.primary = primary
        self.fallback = fallback


def compile_step(step: Step, site: Callable[[Call, str], CallSite], where: str,
                 streams: Callable[[str], random.Random]) -> list[Any]:
    """One step of an endpoint as the runtime steps ``Job.next_step`` walks: a call site, a
    tuple of them (parallel), a ``OneOfRuntime``, a ``FallbackRuntime``, or a ``GroupStart``
    followed by the group's steps. ``site(call, where)`` makes a call site; ``streams(name)``
    gives the random stream of a choice."""
    if isinstance(step, Call):
        return [site(step, where)]
    sites = tuple(site(c, f"{where}/{j}") for j, c in enumerate(step.calls))
    if isinstance(step, OneOf):
        return [OneOfRuntime(sites, step.weights, streams(f"one_of/{where}"))]
    if isinstance(step, Fallback):
        return [FallbackRuntime(*sites)]
    if isinstance(step, Group):
        rng = streams(f"group/{where}")
        if step.parallel:
            return [GroupStart(step.probability, 1, rng), sites]
        return [GroupStart(step.probability, len(sites), rng), *sites]
    return [sites]


class EndpointRuntime:
    """An endpoint of a service, ready to run: ``service_time()`` draws one service time."""

    __slots__ = ("name", "service", "service_time", "steps", "target")

    def __init__(self, service: str, name: str, service_time: Callable[[], float]) -> None:
        self.service = service
        self.name = name
        self.target = f"{service}.{name}"
        self.service_time = service_time
        # CallSite | tuple[CallSite, ...] | OneOfRuntime | GroupStart | FallbackRuntime,
        # set once compiled.
        self.steps: tuple[Any, ...] = ()

    def __repr__(self) -> str:
        return f"<Endpoint {self.target}>"


class Job:
    """One request at one instance: queued, served, then making its calls."""

    __slots__ = ("alive", "attempt", "caller", "deadline", "endpoint", "failure", "fallen",
                 "instance", "key", "pending", "queued_at", "step", "token", "waiter")

    def __init__(self, instance: Instance, endpoint: EndpointRuntime, waiter: Waiter, token: int,
                 key: int, caller: Instance | None, deadline: float | None = None,
                 attempt: int = FIRST) -> None:
        self.instance = instance
        self.endpoint = endpoint
        self.waiter = waiter
        self.token = token
        self.key = key  # identifies the workload request (consistent hashing)
        self.caller = caller
        self.alive = True
        self.step = 0
        self.pending = 0  # calls of the current parallel group still out
        self.failure: str | None = None  # root cause of the group's first failed call
        self.queued_at = 0.0  # when the job started waiting for a worker (if it had to)
        # The absolute time at which whoever waits for this job stops waiting (None: nobody's
        # deadline). Work started after it is orphaned; a service that propagates deadlines
        # drops it from the queue instead.
        self.deadline = deadline
        self.attempt = attempt  # FIRST, RETRY or HEDGE: what sent it (sustaining-load shares)
        self.fallen = False  # the current fallback step's primary failed: its fallback is out

    def served(self, _event: object) -> None:
        """The service time is over (SimPy callback)."""
        if not self.alive:  # the instance died meanwhile
            return
        self.instance.release()
        self.next_step()

    def next_step(self) -> None:
        steps = self.endpoint.steps
        index = self.step
        while index < len(steps):
            step = steps[index]
            index += 1
            self.step = index
            kind = step.__class__
            if kind is tuple:
                if self._fan_out(step):
                    return
                continue
            if kind is GroupStart:
                if step.rng.random() >= step.probability:
                    index += step.length  # the whole group is not made this time
                continue
            if kind is OneOfRuntime:
                step = step.pick()
            elif kind is FallbackRuntime:
                self.fallen = False
                step = step.primary
            # One call site, inline (the engine's hottest step): not made this time, made
            # without waiting (asynchronous), or made and waited for.
            if step.sometimes and not step.chosen():
                continue
            if step.asynchronous:
                step.call(self.instance, None, self.key)
                continue
            step.call(self.instance, self, self.key)
            return
        self.instance.finish(self, True, None, None)

    def _fan_out(self, group: tuple[CallSite, ...]) -> bool:
        """Start a parallel group; False if none of its calls is waited for."""
        instance = self.instance
        chosen = [site for site in group if not site.sometimes or site.chosen()]
        waited = [site for site in chosen if not site.asynchronous]
        for site in chosen:
            if site.asynchronous:
                site.call(instance, None, self.key)
        if not waited:
            return False
        # Set before starting: a call may finish at once (an open circuit, say).
        self.pending = len(waited)
        for site in waited:
            site.call(instance, self, self.key)
        return True

    def call_done(self, ok: bool, root: str | None) -> None:
        """A call of the current step finished (an optional call that failed counts as ok)."""
        if not self.alive:
            return
        if self.pending:
            self.pending -= 1
            if not ok and self.failure is None:
                self.failure = root
            if self.pending:
                return
            if self.failure is not None:
                ok, root, self.failure = False, self.failure, None
        if ok:
            self.next_step()
            return
        step = self.endpoint.steps[self.step - 1]
        if step.__class__ is FallbackRuntime and not self.fallen:
            # The primary failed: the step now stands or falls with its fallback.
            self.fallen = True
            fallback = step.fallback
            if not fallback.sometimes or fallback.chosen():
                fallback.call(self.instance, self, self.key)
                return
        self.instance.finish(self, False, DEPENDENCY_FAILED, root)
