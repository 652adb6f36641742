"""Outlier detection in the run: one detector per (caller instance, callee service), a timer.

Istio applies a DestinationRule's ``outlierDetection`` in every client sidecar, and each Envoy
keeps its own detector: so an ``OutlierGroup`` holds, for one (caller service, callee service)
edge, one ``OutlierDetector`` (``simulations.outliers``) per caller instance, indexed like the
caller's instances. Call sites report each settled attempt (``report``); the group's interval
timer ticks every detector at ``interval``, ``2 * interval``, ... from the start of the run
(Envoy arms its timer when the cluster is created; faultmesh starts them all at 0).

How a faultmesh attempt maps onto Envoy's response classes (outlier detection with
``split_external_local_origin_errors: false``, Istio's setting):

* success -> a 2xx;
* a refused connection to a stopped instance (``instance down``), a timeout (including a request
  or response lost to a partition or to loss), a full queue or concurrency limit at the callee
  -> a gateway error (502/503/504 or the local-origin failure Envoy maps to one): it counts for
  both ``consecutive_gateway_errors`` and ``consecutive_5xx``;
* any other failure the callee answers with (its own error, an injected error, a dependency
  that failed under it) -> a 500: it counts for ``consecutive_5xx`` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import simpy
from simpy.events import Timeout

from faultmesh.model.system import OutlierDetection
from faultmesh.simulations.outcomes import (
    CONCURRENCY_LIMIT,
    INSTANCE_DOWN,
    MESSAGE_LOST,
    PARTITION,
    QUEUE_FULL,
    TIMED_OUT,
)
from faultmesh.simulations.outliers import OutlierDetector, Result

if TYPE_CHECKING:
    from faultmesh.simulations.observation.summary import OutlierSummary

GATEWAY_CAUSES = frozenset({INSTANCE_DOWN, TIMED_OUT, PARTITION, MESSAGE_LOST, QUEUE_FULL,
                            CONCURRENCY_LIMIT})


def classify(ok: bool, cause: str | None) -> Result:
    """The Envoy response class of a settled attempt (see the module's docstring)."""
    if ok:
        return "ok"
    return "gateway" if cause in GATEWAY_CAUSES else "error"


class OutlierGroup:
    """The detectors of one edge, one per caller instance, and their interval timer."""

    __slots__ = ("detectors", "env", "policy")

    def __init__(self, env: simpy.Environment, policy: OutlierDetection, callers: list[str],
                 hosts: list[str]) -> None:
        self.env = env
        self.policy = policy
        self.detectors = tuple(OutlierDetector(policy, hosts, caller) for caller in callers)

    def start(self) -> None:
        Timeout(self.env, self.policy.interval).callbacks.append(self._tick)

    def _tick(self, _event: object) -> None:
        now = self.env.now
        for detector in self.detectors:
            detector.tick(now)
        Timeout(self.env, self.policy.interval).callbacks.append(self._tick)

    def summary(self) -> OutlierSummary:
        events = sorted((e for d in self.detectors for e in d.events), key=lambda e: e[0])
        return {"ejections": events,
                "ejected": sum(1 for e in events if e[2] == "eject"),
                "overflows": sum(d.overflows for d in self.detectors),
                "still_ejected": sorted({f"{d.caller}:{h}" for d in self.detectors
                                         for h in d.ejected})}
