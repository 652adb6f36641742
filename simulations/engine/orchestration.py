"""Orchestration: starting, readiness, restarting and rolling restarts of instances.

A run starts in steady state (every instance up and ready, each probed at a phase of its own)
unless it asks for a cold start, in which every instance starts at time 0.

Readiness follows Kubernetes probes. A started instance is unready; its first readiness probe
runs ``readiness.initial_delay`` after the start (default 0: at once) and then one runs every
``readiness.period``. A probe passes when the instance is up and every service it ``depends_on``
has a ready instance; the first pass makes it ready (a success threshold of 1), so services come
up in ``depends_on`` order. A probe fails when the instance is down (crashed, or held down by a
fault): ``readiness.failures`` consecutive failed probes make a ready instance unready, and in
server-side discovery that is when the registry stops listing it (``faultmesh.model.detection``;
a zone outage is noticed after ``discovery.zone_detection`` instead, its nodes being gone).
Probes of a ready, running instance pass and change nothing, so they are not simulated.

A crashed instance restarts after its service's ``restart.delay`` (never with ``restart:
never``). A fault can also *hold* an instance down (a crash with a duration, a zone outage, a
stochastic crash under repair); it starts again when the last hold is released, with no
restart delay: the fault's duration (or repair time) is the whole time it is down. A rolling
restart stops an instance gracefully (it deregisters first) and starts it again.
"""

from __future__ import annotations

import math
import random

import simpy
from simpy.events import Timeout

from faultmesh.model.system import Service
from faultmesh.simulations.engine.discovery import Discovery
from faultmesh.simulations.engine.instances import Instance


class Orchestrator:
    """Starts and stops instances, honouring readiness, dependencies and restart policies."""

    def __init__(self, env: simpy.Environment, services: dict[str, Service],
                 discovery: Discovery, rng: random.Random | None = None,
                 zone_detection: float = 0.0) -> None:
        self.env = env
        self.services = services
        self.discovery = discovery
        self.zone_detection = zone_detection
        # Time of the first readiness probe of each instance's current container; probes then
        # run every period. Instances running at time 0 were started earlier: a random phase.
        self.first_probe: dict[Instance, float] = {}
        for instance_list in discovery.services.values():
            for instance in instance_list:
                period = services[instance.service].readiness.period
                self.first_probe[instance] = -rng.uniform(0.0, period) if rng else 0.0

    def cold_start(self, instances: list[Instance]) -> None:
        """Take every instance down silently and start them all now."""
        for instance in instances:
            instance.up = instance.ready = False
            instance.up_time = 0.0
            self.discovery.on_down(instance, graceful=True)
        for instance in instances:
            self.start(instance)

    def start(self, instance: Instance) -> None:
        if instance.up:
            return
        instance.boot()
        self.discovery.on_boot(instance)
        readiness = self.services[instance.service].readiness
        first = self.env.now + readiness.initial_delay
        self.first_probe[instance] = first
        generation = instance.generation
        if readiness.initial_delay <= 0:
            self._probe(instance, generation)
        else:
            Timeout(self.env, readiness.initial_delay).callbacks.append(
                lambda _event: self._probe(instance, generation))

    def _probe(self, instance: Instance, generation: int) -> None:
        if instance.generation != generation or not instance.up or instance.ready:
            return
        service = self.services[instance.service]
        if all(self.discovery.live[dep] for dep in service.depends_on):
            instance.ready = True
            self.discovery.on_ready(instance)
            return
        Timeout(self.env, service.readiness.period).callbacks.append(
            lambda _event: self._probe(instance, generation))

    def detection(self, instance: Instance, now: float) -> float:
        """How long after a crash at ``now`` the instance's ``failures``-th probe fails."""
        readiness = self.services[instance.service].readiness
        period = readiness.period
        first = self.first_probe.get(instance, 0.0)
        # The first probe at or after the crash fails, and so does every later one.
        k = max(0, math.ceil((now - first) / period)) if period > 0 else 0
        return first + (k + readiness.failures - 1) * period - now

    def _stop(self, instance: Instance, graceful: bool, node: bool = False) -> None:
        if not instance.up:
            return
        was_ready = instance.ready
        now = self.env.now
        instance.kill()
        if graceful or not was_ready:
            delay = 0.0
        elif node:
            delay = self.zone_detection
        else:
            delay = self.detection(instance, now)
        self.discovery.on_down(instance, graceful, delay)

    def crash(self, instance: Instance, node: bool = False) -> None:
        """The instance crashes (with its node: ``node``); it restarts after its restart delay."""
        if not instance.up:
            return
        self._stop(instance, graceful=False, node=node)
        delay = self.services[instance.service].restart.delay
        if delay is not None:
            self._start_later(instance, delay)

    def restart(self, instance: Instance) -> None:
        """Stop gracefully and start again (one step of a rolling restart)."""
        if not instance.up:
            return
        self._stop(instance, graceful=True)
        self._start_later(instance, self.services[instance.service].restart.delay or 0.0)

    def _start_later(self, instance: Instance, delay: float) -> None:
        generation = instance.generation

        def start(_event: object) -> None:
            if instance.generation == generation and instance.holds == 0:
                self.start(instance)

        Timeout(self.env, delay).callbacks.append(start)

    def hold(self, instance: Instance, node: bool = False) -> None:
        """A fault holds the instance down (killing it if it is up; with its node: ``node``)."""
        instance.holds += 1
        self._stop(instance, graceful=False, node=node)

    def release(self, instance: Instance) -> None:
        """A fault stops holding the instance down; the last release starts it."""
        instance.holds -= 1
        if instance.holds == 0:
            self.start(instance)
