"""How long a dead instance stays routable: the detection delays the verifier and engine share.

* **server** discovery: the registry (the endpoints of a Kubernetes Service) lists an instance
  while it is ready. A crashed instance (its process gone, its node alive) stays ready until
  its ``readiness.failures``-th consecutive failed probe, at most ``period * failures`` after
  the crash (``Readiness.detection``), or until it is restarted, whichever comes first (a
  restarted instance is unready until its first probe passes). The instances of a zone outage
  (their nodes gone, no probe results reported) leave after ``discovery.zone_detection``, the
  node controller's grace period.
* **client** discovery: the registry drops an instance ``ttl`` after its last heartbeat (which
  came at or before the crash) and a caller's cache lags the registry by up to ``refresh``.
"""

from __future__ import annotations

from faultmesh.model.system import System


def server_window(system: System) -> float:
    """Longest time a server-side registry keeps listing a dead instance."""
    if not system.services:
        return 0.0
    # Every instance lives in a zone (``default`` when none are named): an outage can take it.
    crashes = max(s.readiness.detection for s in system.services.values())
    return max(crashes, system.discovery.zone_detection)


def client_window(system: System) -> float:
    """Longest time a client-side cache keeps listing a dead instance."""
    return system.discovery.ttl + system.discovery.refresh


def stale_window(system: System) -> float:
    """Longest time a caller can keep routing to a dead instance, in the spec's discovery mode."""
    if system.discovery.mode == "client":
        return client_window(system)
    return server_window(system)


__all__ = ["client_window", "server_window", "stale_window"]
