"""Orchestration: starting, readiness, restarting and rolling restarts of instances.

A run starts in steady state (every instance up and ready) unless it asks for a cold start, in
which every instance starts at time 0. A started instance becomes ready at its first readiness
probe, ``readiness.period`` after it started, provided every service it ``depends_on`` has a
ready instance; otherwise it probes again every period. Services therefore come up in
``depends_on`` order.

A crashed instance restarts after its service's ``restart.delay`` (never with ``restart:
never``). A fault can also *hold* an instance down (a crash with a duration, a zone outage, a
stochastic crash while under repair); it starts again when the last hold is released. A
rolling restart stops an instance gracefully (it deregisters first) and starts it again.
"""

from __future__ import annotations

import simpy
from faultmesh.model.system import Service
from faultmesh.simulations.engine.discovery import Discovery
from faultmesh.simulations.engine.instances import Instance
from simpy.events import Timeout


class Orchestrator:
    """Starts and stops instances, honouring readiness, dependencies and restart policies."""

    def __init__(self, env: simpy.Environment, services: dict[str, Service],
                 discovery: Discovery) -> None:
        self.env = env
        self.services = services
        self.discovery = discovery
        self.restarts = 0

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
        period = self.services[instance.service].readiness.period
        generation = instance.generation
        Timeout(self.env, period).callbacks.append(
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

    def _stop(self, instance: Instance, graceful: bool) -> None:
        if not instance.up:
            return
        instance.kill()
        self.discovery.on_down(instance, graceful)

    def crash(self, instance: Instance) -> None:
        """The instance crashes; it restarts after its service's restart delay."""
        if not instance.up:
            return
        self._stop(instance, graceful=False)
        delay = self.services[instance.service].restart.delay
        if delay is not None:
            self._start_later(instance, delay)

    def restart(self, instance: Instance) -> None:
        """Stop gracefully and start again (one step of a rolling restart)."""
        if not instance.up:
            return
        self._stop(instance, graceful=True)
        self.restarts += 1
        self._start_later(instance, self.services[instance.service].restart.delay or 0.0)

    def _start_later(self, instance: Instance, delay: float) -> None:
        generation = instance.generation

        def start(_event: object) -> None:
            if instance.generation == generation and instance.holds == 0:
                self.start(instance)

        Timeout(self.env, delay).callbacks.append(start)

    def hold(self, instance: Instance) -> None:
        """A fault holds the instance down (killing it if it is up)."""
        instance.holds += 1
        self._stop(instance, graceful=False)

    def release(self, instance: Instance) -> None:
        """A fault stops holding the instance down; the last release starts it."""
        instance.holds -= 1
        if instance.holds == 0:
            self.start(instance)

