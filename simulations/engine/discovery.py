"""Service discovery: which instances of a service a caller can route to.

Each instance routes its calls with ``instance.view``, a mapping service -> instances.

* **server** mode: callers share the registry's view, the endpoints of a Kubernetes Service:
  the instances that are ready. An instance joins when its readiness probe passes and leaves at
  once when it stops gracefully or is restarted (a new container is unready until its probe
  passes). A crash is noticed after a detection delay (``faultmesh.model.detection``): the
  orchestrator's readiness probes fail ``readiness.failures`` times in a row, or, for a zone
  outage, the node controller's grace period ``discovery.zone_detection`` passes. Until then
  callers keep routing to the dead instance and those calls fail (``instance down``).
* **client** mode: instances register in a registry when they become ready and heartbeat every
  ``heartbeat`` seconds; the registry drops an instance ``ttl`` after its last heartbeat (at
  once when it stops gracefully). Each caller routes from its own cached copy of the registry,
  refreshed every ``refresh`` seconds (at a phase of its own). A crashed instance is therefore
  still routed to until the registry and then the caller's cache catch up: at most
  ``heartbeat + ttl + refresh`` seconds.

A registry outage freezes every view where it is: client caches stop refreshing (a restarted
caller keeps the view it had) and, in server mode, the router keeps its last view. The implicit
ingress of workload requests always sees the live view: the instances that are up and ready.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from functools import partial

import simpy
from simpy.events import Timeout

from faultmesh.model.detection import stale_window
from faultmesh.model.system import Discovery as DiscoveryPolicy
from faultmesh.model.system import System
from faultmesh.simulations.engine.instances import Instance

View = dict[str, tuple[Instance, ...]]


class Discovery:
    """The live view, the registry (client mode), and every instance's cache."""

    def __init__(self, env: simpy.Environment, policy: DiscoveryPolicy,
                 services: dict[str, list[Instance]], rng: random.Random) -> None:
        self.env = env
        self.policy = policy
        self.services = services
        self.client = policy.mode == "client"
        self.outages = 0
        self.frozen: View | None = None
        self.live: View = {name: self._members(instances, "ready")
                           for name, instances in services.items()}
        self.published: View = dict(self.live)  # the registry's current content (client mode)
        # Server mode: the instances the registry lists (ready, or crashed and not yet noticed),
        # and the view built from them, shared by every caller and updated in place.
        self.listed: set[Instance] = {i for i in self._all() if i.ready}
        self.endpoints: View = dict(self.live)
        self.heartbeat_phase: dict[Instance, float] = {}
        for instance in self._all():
            instance.view = self.published if self.client else self.endpoints
            if self.client:
                self.heartbeat_phase[instance] = rng.uniform(0.0, policy.heartbeat)
        self._refresh_phase = {i: rng.uniform(0.0, policy.refresh) for i in self._all()} \
            if self.client else {}

    def _all(self) -> Iterable[Instance]:
        for instances in self.services.values():
            yield from instances

    @staticmethod
    def _members(instances: list[Instance], flag: str) -> tuple[Instance, ...]:
        return tuple(i for i in instances if getattr(i, flag))

    def _refresh_on(self, instance: Instance, _event: object) -> None:
        self._refresh(instance)

    def start(self) -> None:
        """Start the caches' refresh cycles (client mode)."""
        for instance, phase in self._refresh_phase.items():
            Timeout(self.env, phase).callbacks.append(partial(self._refresh_on, instance))

    # --- state changes ------------------------------------------------------------------------

    def on_ready(self, instance: Instance) -> None:
        """``instance`` passed its readiness probe: it joins the live view and registers."""
        self._update_live(instance.service)
        if not self.client:
            self._list(instance, True)
        elif not instance.registered:
            instance.registered = True
            self._publish(instance.service)

    def on_boot(self, instance: Instance) -> None:
        """A (re)started instance fetches its view (unless the registry is out).

        In server mode the new container is unready: a crashed instance that the registry still
        listed leaves it now.
        """
        if not self.client:
            self._list(instance, False)
        if self.frozen is not None:
            if not self.client:
                instance.view = self.frozen
            return
        instance.view = self.published if self.client else self.endpoints

    def on_down(self, instance: Instance, graceful: bool, detection: float = 0.0) -> None:
        """``instance`` stopped: it leaves the live view; the registry learns per its mode.

        ``detection``: server mode, after a crash: how long until the registry notices.
        """
        self._update_live(instance.service)
        if not self.client:
            if graceful or detection <= 0:
                self._list(instance, False)
            else:
                generation = instance.generation
                Timeout(self.env, detection).callbacks.append(
                    lambda _event: self._noticed(instance, generation))
            return
        if not instance.registered:
            return
        if graceful:
            instance.registered = False
            self._publish(instance.service)
            return
        now = self.env.now
        heartbeat = self.policy.heartbeat
        phase = self.heartbeat_phase[instance]
        last = now - (now - phase) % heartbeat if now >= phase else now
        evict_at = max(now, last + self.policy.ttl)
        Timeout(self.env, evict_at - now).callbacks.append(
            lambda _event: self._evict(instance))

    def _noticed(self, instance: Instance, generation: int) -> None:
        # Only if the instance is still down from that crash (a restart already unlisted it).
        if instance.generation == generation and not instance.up:
            self._list(instance, False)

    def _list(self, instance: Instance, on: bool) -> None:
        if on == (instance in self.listed):
            return
        if on:
            self.listed.add(instance)
        else:
            self.listed.discard(instance)
        listed = self.listed
        self.endpoints[instance.service] = tuple(
            i for i in self.services[instance.service] if i in listed)

    def _evict(self, instance: Instance) -> None:
        if instance.registered and not instance.ready:
            instance.registered = False
            self._publish(instance.service)

    def _update_live(self, service: str) -> None:
        self.live[service] = self._members(self.services[service], "ready")

    def _publish(self, service: str) -> None:
        # Copy on write: caches hold the old mapping until they refresh.
        published = dict(self.published)
        published[service] = self._members(self.services[service], "registered")
        self.published = published

    def _refresh(self, instance: Instance) -> None:
        if self.frozen is None and instance.up:
            instance.view = self.published
        Timeout(self.env, self.policy.refresh).callbacks.append(
            lambda _event: self._refresh(instance))

    # --- registry outage ----------------------------------------------------------------------

    def outage(self, on: bool) -> None:
        """Start or end (one of possibly overlapping) registry outages."""
        self.outages += 1 if on else -1
        if self.outages == 1 and on:
            self.frozen = dict(self.published if self.client else self.endpoints)
            if not self.client:
                for instance in self._all():
                    instance.view = self.frozen
        elif self.outages == 0:
            self.frozen = None
            if not self.client:
                for instance in self._all():
                    instance.view = self.endpoints

    @staticmethod
    def staleness_bound(system: System) -> float:
        """Longest time a caller may route to a crashed instance (as the verifier counts it)."""
        return stale_window(system)
